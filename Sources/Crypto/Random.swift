// Random.swift: the cryptographically secure random source (libsodium randombytes, which reads
// getrandom(2) on Linux, one system call each time). Use it for keys, ephemeral keys, sender indices, cookie
// secrets and seeds; not per packet or per batch (timer jitter, which needs no secrecy, has TimerJitter).

import CSodium

public enum SecureRandom {
    /// `count` fresh random bytes.
    public static func bytes(_ count: Int) -> [UInt8] {
        precondition(count >= 0, "negative byte count")
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            fill(UnsafeMutableRawBufferPointer(buffer))
            initialized = count
        }
    }

    /// Overwrites the whole buffer with random bytes.
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        CryptoLibrary.require()
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        randombytes_buf(base, buffer.count)
    }

    public static func uint32() -> UInt32 {
        CryptoLibrary.require()
        return randombytes_random()
    }

    public static func uint64() -> UInt64 {
        var value: UInt64 = 0
        withUnsafeMutableBytes(of: &value) { fill($0) }
        return value
    }
}
