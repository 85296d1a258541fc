// SipHash.swift: SipHash-2-4 (libsodium crypto_shorthash), a fast keyed hash for hash tables
// whose keys an attacker can choose: peer lookup by endpoint, flow hashing, rate limiter
// buckets. Not a MAC for anything that crosses the wire.

import CSodium

public enum SipHash {
    public static let keySize = 16

    /// SipHash-2-4 of data[0..<length] under the 16-byte key at `key`; the 8-byte output read
    /// as a little-endian integer (so the reference vectors' byte strings read back to front).
    public static func hash(key: UnsafeRawPointer, data: UnsafeRawPointer, length: Int) -> UInt64 {
        precondition(length >= 0, "negative SipHash length")
        CryptoLibrary.require()
        var out: UInt64 = 0
        withUnsafeMutableBytes(of: &out) { out in
            _ = crypto_shorthash_siphash24(out.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                           data.assumingMemoryBound(to: UInt8.self), UInt64(length),
                                           key.assumingMemoryBound(to: UInt8.self))
        }
        return UInt64(littleEndian: out)
    }

    /// `key` must be 16 bytes.
    public static func hash(key: [UInt8], data: [UInt8]) -> UInt64 {
        precondition(key.count == keySize, "SipHash key must be 16 bytes")
        return key.withUnsafeBytes { key in
            data.withUnsafeBytes { data in
                // An empty array may have no storage; any valid address will do for length 0.
                hash(key: key.baseAddress!, data: data.baseAddress ?? key.baseAddress!, length: data.count)
            }
        }
    }
}
