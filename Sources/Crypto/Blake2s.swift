// Blake2s.swift: BLAKE2s (RFC 7693, through libb2) and the constructions WireGuard builds on it:
// HASH (BLAKE2s-256), MAC (keyed BLAKE2s, 16 bytes for mac1/mac2/cookies), HMAC-BLAKE2s
// (RFC 2104 with a 64-byte block) and the Noise KDF1/2/3 made from HMAC.
//
// These run once or twice per handshake message, so they return fresh arrays. Intermediate
// states and pads that held key material are wiped before returning.

import CBlake2

public enum Blake2s {
    public static let hashSize = 32
    public static let blockSize = 64
    public static let maxKeySize = 32

    /// BLAKE2s-256 of the concatenation of `parts`.
    public static func hash(_ parts: [UInt8]...) -> [UInt8] {
        hash(parts: parts)
    }

    /// BLAKE2s-256 of the concatenation of `parts`.
    public static func hash(parts: [[UInt8]]) -> [UInt8] {
        var state = blake2s_state()
        let rc = blake2s_init(&state, hashSize)
        precondition(rc == 0, "blake2s_init failed")
        for part in parts {
            part.withUnsafeBytes { update(&state, $0) }
        }
        return finish(&state, outputLength: hashSize)
    }

    /// Keyed BLAKE2s: key 1...32 bytes, output 1...32 bytes (WireGuard's MAC uses 16).
    public static func mac(key: [UInt8], data: [UInt8], outputLength: Int) -> [UInt8] {
        data.withUnsafeBytes { mac(key: key, data: $0, outputLength: outputLength) }
    }

    /// Keyed BLAKE2s over bytes in place (for example the start of a received handshake message).
    public static func mac(key: [UInt8], data: UnsafeRawBufferPointer, outputLength: Int) -> [UInt8] {
        precondition((1...maxKeySize).contains(key.count), "BLAKE2s key must be 1...32 bytes")
        precondition((1...hashSize).contains(outputLength), "BLAKE2s output must be 1...32 bytes")
        var state = blake2s_state()
        let rc = key.withUnsafeBytes { blake2s_init_key(&state, outputLength, $0.baseAddress, key.count) }
        precondition(rc == 0, "blake2s_init_key failed")
        update(&state, data)
        return finish(&state, outputLength: outputLength)
    }

    /// HMAC-BLAKE2s-256 (RFC 2104, block size 64): 32 bytes.
    public static func hmac(key: [UInt8], data: [UInt8]) -> [UInt8] {
        data.withUnsafeBytes { hmac(key: key, data: $0) }
    }

    /// HMAC-BLAKE2s-256 over bytes in place.
    public static func hmac(key: [UInt8], data: UnsafeRawBufferPointer) -> [UInt8] {
        withUnsafeTemporaryAllocation(byteCount: blockSize + hashSize, alignment: 8) { scratch in
            let pad = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<blockSize])
            let inner = UnsafeMutableRawBufferPointer(rebasing: scratch[blockSize...])
            defer { Memory.zero(scratch) }

            // K0: the key, or its hash if longer than a block, zero-filled to a block.
            pad.initializeMemory(as: UInt8.self, repeating: 0)
            if key.count > blockSize {
                let digest = hash(key)
                pad.copyBytes(from: digest)
            } else {
                pad.copyBytes(from: key)
            }

            var state = blake2s_state()
            // Inner: HASH((K0 ^ ipad) || data).
            for i in 0..<blockSize { pad[i] ^= 0x36 }
            blake2s_start(&state)
            update(&state, UnsafeRawBufferPointer(pad))
            update(&state, data)
            finish(&state, into: inner)

            // Outer: HASH((K0 ^ opad) || inner). Flipping by 0x36 ^ 0x5c turns ipad into opad.
            for i in 0..<blockSize { pad[i] ^= 0x36 ^ 0x5c }
            blake2s_start(&state)
            update(&state, UnsafeRawBufferPointer(pad))
            update(&state, UnsafeRawBufferPointer(inner))
            return finish(&state, outputLength: hashSize)
        }
    }

    /// WireGuard KDF: prk = HMAC(key, input); t1 = HMAC(prk, 0x01); t2 = HMAC(prk, t1||0x02);
    /// t3 = HMAC(prk, t2||0x03). Returns `count` (1...3) 32-byte outputs.
    public static func kdf(key: [UInt8], input: [UInt8], count: Int) -> [[UInt8]] {
        precondition((1...3).contains(count), "KDF output count must be 1...3")
        var prk = hmac(key: key, data: input)
        defer { wipe(&prk) }
        var outputs: [[UInt8]] = []
        outputs.reserveCapacity(count)
        var message: [UInt8] = []
        message.reserveCapacity(hashSize + 1)
        defer { wipe(&message) }
        for index in 1...count {
            message.removeAll(keepingCapacity: true)
            if let previous = outputs.last { message.append(contentsOf: previous) }
            message.append(UInt8(index))
            outputs.append(hmac(key: prk, data: message))
        }
        return outputs
    }

    // MARK: - libb2 plumbing

    private static func blake2s_start(_ state: inout blake2s_state) {
        let rc = blake2s_init(&state, hashSize)
        precondition(rc == 0, "blake2s_init failed")
    }

    private static func update(_ state: inout blake2s_state, _ data: UnsafeRawBufferPointer) {
        guard let base = data.baseAddress, data.count > 0 else { return }
        _ = blake2s_update(&state, base.assumingMemoryBound(to: UInt8.self), data.count)
    }

    /// Writes the digest into `out` (whose size is the state's output length) and wipes the state.
    private static func finish(_ state: inout blake2s_state, into out: UnsafeMutableRawBufferPointer) {
        let rc = blake2s_final(&state, out.baseAddress!.assumingMemoryBound(to: UInt8.self), out.count)
        precondition(rc == 0, "blake2s_final failed")
        withUnsafeMutableBytes(of: &state) { Memory.zero($0) }
    }

    private static func finish(_ state: inout blake2s_state, outputLength: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: outputLength) { out, initialized in
            finish(&state, into: UnsafeMutableRawBufferPointer(out))
            initialized = outputLength
        }
    }

    private static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { Memory.zero($0) }
    }
}
