// X25519.swift: Curve25519 Diffie-Hellman (RFC 7748) for the Noise handshake, through libsodium.
//
// libsodium clamps the scalar itself on every call, so unclamped private keys give the same
// results as `wg pubkey` does for them. Generated keys are nevertheless stored clamped, byte
// for byte as `wg genkey` writes them, so a key we print is a key `wg` would have printed.

import CSodium

public enum X25519 {
    /// A random private key, clamped as `wg genkey` does: k[0] &= 248; k[31] &= 127; k[31] |= 64.
    public static func generatePrivateKey() -> SecretKey {
        SecretKey(initializingWith: { key in
            SecureRandom.fill(key)
            clamp(key)
        })
    }

    /// The public key for `privateKey` (crypto_scalarmult_base).
    public static func publicKey(for privateKey: SecretKey) -> PublicKey {
        CryptoLibrary.require()
        var publicKey = PublicKey()
        let rc = publicKey.withUnsafeMutableBytes { out in
            privateKey.withUnsafeBytes { scalar in crypto_scalarmult_base(bytes(out), bytes(scalar)) }
        }
        // Clamping sets bit 254, so the scalar is never zero and this cannot fail.
        precondition(rc == 0, "crypto_scalarmult_base failed")
        return publicKey
    }

    /// The shared secret DH(privateKey, publicKey), or nil if it is all zero (the peer sent a
    /// low-order point) or libsodium refuses the point. WireGuard treats nil as a failed handshake.
    public static func sharedSecret(_ privateKey: SecretKey, _ publicKey: PublicKey) -> SecretKey? {
        CryptoLibrary.require()
        var ok = false
        let shared = SecretKey(initializingWith: { out in
            let rc = publicKey.withUnsafeBytes { point in
                privateKey.withUnsafeBytes { scalar in
                    crypto_scalarmult(bytes(out), bytes(scalar), bytes(point))
                }
            }
            ok = rc == 0
        })
        // libsodium already returns -1 for an all-zero result; checking again costs nothing.
        guard ok, !shared.isZero else { return nil }
        return shared
    }

    static func clamp(_ key: UnsafeMutableRawBufferPointer) {
        key[0] &= 248
        key[31] &= 127
        key[31] |= 64
    }

    private static func bytes(_ raw: UnsafeMutableRawBufferPointer) -> UnsafeMutablePointer<UInt8> {
        raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
    }

    private static func bytes(_ raw: UnsafeRawBufferPointer) -> UnsafePointer<UInt8> {
        raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
    }
}
