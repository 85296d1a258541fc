// AEAD.swift: ChaCha20-Poly1305 (RFC 8439, libsodium's "ietf" variant) as WireGuard uses it.
//
// The nonce is 4 zero bytes followed by the 64-bit little-endian counter. Transport packets
// are sealed and opened in place: the plaintext and the ciphertext share one buffer and the
// 16-byte tag sits right after the text. `open` verifies the tag before it decrypts anything
// (libsodium's detached decrypt does so), so a forged packet never turns into plaintext.
//
// The pointer entry points and `AEADBatch` allocate nothing and touch no reference counts;
// the array entry points are for the handshake, where an allocation per message is fine.

import CSodium

public enum ChaChaPoly {
    public static let tagSize = 16
    static let keySize = 32
    static let nonceSize = 12

    /// The WireGuard nonce for `counter` as two little-endian words. Their first 12 bytes are the
    /// nonce: word 0 holds 4 zero bytes then the low half of the counter, word 1 the high half.
    /// (libsodium reads 12 bytes; the last 4 are padding.)
    @inline(__always)
    static func nonce(counter: UInt64) -> (UInt64, UInt64) {
        ((counter << 32).littleEndian, (counter >> 32).littleEndian)
    }

    /// In place: plaintext at buffer[0..<length], writes ciphertext over it and the 16-byte tag
    /// at buffer[length..<length+16].
    public static func seal(key: UnsafeRawPointer, counter: UInt64, buffer: UnsafeMutableRawPointer,
                            length: Int, ad: UnsafeRawBufferPointer?) {
        CryptoLibrary.require()
        sealInPlace(key: key, counter: counter, buffer: buffer, length: length, ad: ad)
    }

    /// In place: buffer[0..<length] is ciphertext||tag (length >= 16). On success plaintext is at
    /// buffer[0..<length-16] and returns true. On failure returns false (buffer content unspecified).
    public static func open(key: UnsafeRawPointer, counter: UInt64, buffer: UnsafeMutableRawPointer,
                            length: Int, ad: UnsafeRawBufferPointer?) -> Bool {
        CryptoLibrary.require()
        return openInPlace(key: key, counter: counter, buffer: buffer, length: length, ad: ad)
    }

    /// Returns ciphertext||tag.
    public static func seal(key: SecretKey, counter: UInt64, plaintext: [UInt8], ad: [UInt8]) -> [UInt8] {
        CryptoLibrary.require()
        let length = plaintext.count
        return [UInt8](unsafeUninitializedCapacity: length + tagSize) { out, initialized in
            let buffer = UnsafeMutableRawBufferPointer(out)
            buffer.copyBytes(from: plaintext)
            ad.withUnsafeBytes { ad in
                key.withUnsafeBytes { key in
                    sealInPlace(key: key.baseAddress!, counter: counter, buffer: buffer.baseAddress!,
                                length: length, ad: ad)
                }
            }
            initialized = length + tagSize
        }
    }

    /// Returns the plaintext, or nil if `ciphertext` is shorter than a tag or fails authentication.
    public static func open(key: SecretKey, counter: UInt64, ciphertext: [UInt8], ad: [UInt8]) -> [UInt8]? {
        CryptoLibrary.require()
        guard ciphertext.count >= tagSize else { return nil }
        var text = ciphertext
        let ok = text.withUnsafeMutableBytes { buffer in
            ad.withUnsafeBytes { ad in
                key.withUnsafeBytes { key in
                    openInPlace(key: key.baseAddress!, counter: counter, buffer: buffer.baseAddress!,
                                length: buffer.count, ad: ad)
                }
            }
        }
        guard ok else { return nil }
        text.removeLast(tagSize)
        return text
    }

    // MARK: - The in-place core (no libsodium initialisation check: callers do that once)

    @inline(__always)
    static func sealInPlace(key: UnsafeRawPointer, counter: UInt64, buffer: UnsafeMutableRawPointer,
                            length: Int, ad: UnsafeRawBufferPointer?) {
        let nonce = nonce(counter: counter)
        withUnsafeBytes(of: nonce) { nonce in
            seal(key: key, nonce: nonce.baseAddress!, buffer: buffer, length: length, ad: ad)
        }
    }

    @inline(__always)
    static func openInPlace(key: UnsafeRawPointer, counter: UInt64, buffer: UnsafeMutableRawPointer,
                            length: Int, ad: UnsafeRawBufferPointer?) -> Bool {
        let nonce = nonce(counter: counter)
        return withUnsafeBytes(of: nonce) { nonce in
            open(key: key, nonce: nonce.baseAddress!, buffer: buffer, length: length, ad: ad)
        }
    }

    /// Seal with an arbitrary 12-byte nonce (for the RFC 8439 vectors, whose nonces are not
    /// WireGuard counters).
    @inline(__always)
    static func seal(key: UnsafeRawPointer, nonce: UnsafeRawPointer, buffer: UnsafeMutableRawPointer,
                     length: Int, ad: UnsafeRawBufferPointer?) {
        precondition(length >= 0, "negative AEAD length")
        let text = buffer.assumingMemoryBound(to: UInt8.self)
        _ = crypto_aead_chacha20poly1305_ietf_encrypt_detached(
            text, text + length, nil,
            text, UInt64(length),
            bytes(ad), UInt64(ad?.count ?? 0),
            nil, nonce.assumingMemoryBound(to: UInt8.self), key.assumingMemoryBound(to: UInt8.self))
    }

    /// Open with an arbitrary 12-byte nonce. Checks the tag over the whole ciphertext first and
    /// decrypts only if it matches.
    @inline(__always)
    static func open(key: UnsafeRawPointer, nonce: UnsafeRawPointer, buffer: UnsafeMutableRawPointer,
                     length: Int, ad: UnsafeRawBufferPointer?) -> Bool {
        guard length >= tagSize else { return false }
        let text = buffer.assumingMemoryBound(to: UInt8.self)
        let textLength = length - tagSize
        return crypto_aead_chacha20poly1305_ietf_decrypt_detached(
            text, nil,
            text, UInt64(textLength), text + textLength,
            bytes(ad), UInt64(ad?.count ?? 0),
            nonce.assumingMemoryBound(to: UInt8.self), key.assumingMemoryBound(to: UInt8.self)) == 0
    }

    @inline(__always)
    private static func bytes(_ buffer: UnsafeRawBufferPointer?) -> UnsafePointer<UInt8>? {
        buffer?.baseAddress?.assumingMemoryBound(to: UInt8.self)
    }
}

/// One packet of a batch. Plain struct, no references, so a batch costs no ARC.
public struct AEADItem {
    /// Start of the plaintext (seal) or ciphertext (open); the text is replaced in place.
    public var data: UnsafeMutableRawPointer
    /// 32 key bytes (SecretKey.unsafePointer); the owner keeps the key alive during the batch.
    public var key: UnsafeRawPointer
    public var counter: UInt64
    /// Seal: the plaintext length, left unchanged (the tag then occupies data[length..<length+16]).
    /// Open: the ciphertext+tag length in; the plaintext length out on success.
    public var length: Int32
    /// Open: whether the packet authenticated. Seal: always set to true.
    public var ok: Bool

    public init(data: UnsafeMutableRawPointer, key: UnsafeRawPointer, counter: UInt64, length: Int32) {
        self.data = data
        self.key = key
        self.counter = counter
        self.length = length
        self.ok = false
    }
}

/// Seals or opens many transport packets in one call: a plain loop over the items with the nonce
/// built on the stack, no allocation and no reference counting per packet. WireGuard transport
/// packets carry no associated data.
public enum AEADBatch {
    /// Encrypts each item in place and writes its tag right after the plaintext; sets ok = true.
    public static func seal(_ items: UnsafeMutableBufferPointer<AEADItem>) {
        CryptoLibrary.require()
        for index in items.indices {
            let item = items[index]
            ChaChaPoly.sealInPlace(key: item.key, counter: item.counter, buffer: item.data,
                                   length: Int(item.length), ad: nil)
            items[index].ok = true
        }
    }

    /// Verifies and decrypts each item in place. Sets ok; on success also length -= 16.
    public static func open(_ items: UnsafeMutableBufferPointer<AEADItem>) {
        CryptoLibrary.require()
        for index in items.indices {
            let item = items[index]
            let ok = ChaChaPoly.openInPlace(key: item.key, counter: item.counter, buffer: item.data,
                                            length: Int(item.length), ad: nil)
            items[index].ok = ok
            if ok { items[index].length = item.length - Int32(ChaChaPoly.tagSize) }
        }
    }
}
