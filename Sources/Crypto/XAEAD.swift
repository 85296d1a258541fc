// XAEAD.swift: XChaCha20-Poly1305 (libsodium crypto_aead_xchacha20poly1305_ietf), which WireGuard
// uses only to encrypt the cookie in a cookie reply: the 24-byte nonce is random, so no
// counter has to be kept. Rare and small, so the arrays-in, arrays-out form is fine here.

import CSodium

public enum XChaChaPoly {
    public static let keySize = 32
    public static let nonceSize = 24
    public static let tagSize = 16

    /// Returns ciphertext||tag. `key` must be 32 bytes and `nonce` 24 (a programming error otherwise).
    public static func seal(key: [UInt8], nonce: [UInt8], plaintext: [UInt8], ad: [UInt8]) -> [UInt8] {
        checkSizes(key: key, nonce: nonce)
        CryptoLibrary.require()
        let length = plaintext.count
        return [UInt8](unsafeUninitializedCapacity: length + tagSize) { out, initialized in
            let text = out.baseAddress!
            plaintext.withUnsafeBufferPointer { plain in
                _ = crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
                    text, text + length, nil,
                    plain.baseAddress, UInt64(length),
                    ad, UInt64(ad.count),
                    nil, nonce, key)
            }
            initialized = length + tagSize
        }
    }

    /// Returns the plaintext, or nil if `ciphertext` is shorter than a tag or fails authentication.
    public static func open(key: [UInt8], nonce: [UInt8], ciphertext: [UInt8], ad: [UInt8]) -> [UInt8]? {
        checkSizes(key: key, nonce: nonce)
        CryptoLibrary.require()
        guard ciphertext.count >= tagSize else { return nil }
        let length = ciphertext.count - tagSize
        var ok = false
        let plaintext = [UInt8](unsafeUninitializedCapacity: length) { out, initialized in
            ciphertext.withUnsafeBufferPointer { sealed in
                let text = sealed.baseAddress!
                ok = crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
                    out.baseAddress, nil,
                    text, UInt64(length), text + length,
                    ad, UInt64(ad.count),
                    nonce, key) == 0
            }
            // libsodium zeroes the output when authentication fails, so it is initialised either way.
            initialized = length
        }
        return ok ? plaintext : nil
    }

    private static func checkSizes(key: [UInt8], nonce: [UInt8]) {
        precondition(key.count == keySize, "XChaCha20-Poly1305 key must be 32 bytes")
        precondition(nonce.count == nonceSize, "XChaCha20-Poly1305 nonce must be 24 bytes")
    }
}
