// OpenSSLChaChaPoly.swift: ChaCha20-Poly1305 (RFC 8439) through OpenSSL's EVP interface.
//
// OpenSSL carries AVX2/AVX-512 code for ChaCha20 and Poly1305 and beats libsodium on large packets
// on CPUs that have it (AEADSelection measures which is faster here). Setting up an EVP context
// is expensive (a cipher fetch and allocations), so one context per direction is made once and
// kept; per packet only the key and the nonce are loaded into it:
//
//   seal: EncryptInit(key, nonce), [Update(ad)], Update(text in place), Final, GET_TAG → after the text
//   open: DecryptInit(key, nonce), SET_TAG, [Update(ad)], Update(text in place), Final (checks the tag)
//
// Unlike libsodium, OpenSSL decrypts while it authenticates: when the tag check fails the text
// has already been overwritten. `open` then wipes it and returns false, so a forged packet never
// leaves plaintext behind that a careless caller could use.
//
// An instance holds per-packet state inside OpenSSL and must be used by one thread at a time.

import COpenSSL

final class OpenSSLChaChaPoly {
    private let sealContext: OpaquePointer
    private let openContext: OpaquePointer

    /// Nil if this OpenSSL cannot do ChaCha20-Poly1305 (e.g. a FIPS-only configuration).
    init?() {
        guard let cipher = EVP_chacha20_poly1305() else { return nil }
        let seal = EVP_CIPHER_CTX_new()
        let open = EVP_CIPHER_CTX_new()
        guard let seal, let open,
              EVP_EncryptInit_ex(seal, cipher, nil, nil, nil) == 1,
              EVP_DecryptInit_ex(open, cipher, nil, nil, nil) == 1,
              EVP_CIPHER_CTX_get_iv_length(seal) == Int32(ChaChaPoly.nonceSize),
              EVP_CIPHER_CTX_get_key_length(seal) == Int32(ChaChaPoly.keySize)
        else {
            EVP_CIPHER_CTX_free(seal)
            EVP_CIPHER_CTX_free(open)
            ERR_clear_error()
            return nil
        }
        sealContext = seal
        openContext = open
    }

    deinit {
        EVP_CIPHER_CTX_free(sealContext)
        EVP_CIPHER_CTX_free(openContext)
    }

    /// In place: plaintext at buffer[0..<length] becomes ciphertext, the tag goes to
    /// buffer[length..<length+16]. Returns false only if OpenSSL reports an error (a set-up context
    /// never does); the text and tag are then zeroed so no plaintext can go out by mistake.
    @inline(__always)
    func seal(key: UnsafeRawPointer, counter: UInt64, buffer: UnsafeMutableRawPointer, length: Int) -> Bool {
        let nonce = ChaChaPoly.nonce(counter: counter)
        return withUnsafeBytes(of: nonce) { nonce in
            seal(key: key, nonce: nonce.baseAddress!, buffer: buffer, length: length, ad: nil)
        }
    }

    /// In place: buffer[0..<length] is ciphertext||tag. On success the plaintext is at
    /// buffer[0..<length-16] and the result is true. On failure the result is false and
    /// buffer[0..<length-16] is zeroed.
    @inline(__always)
    func open(key: UnsafeRawPointer, counter: UInt64, buffer: UnsafeMutableRawPointer, length: Int) -> Bool {
        let nonce = ChaChaPoly.nonce(counter: counter)
        return withUnsafeBytes(of: nonce) { nonce in
            open(key: key, nonce: nonce.baseAddress!, buffer: buffer, length: length, ad: nil)
        }
    }

    /// Seal with an arbitrary 12-byte nonce and optional associated data (the RFC 8439 vectors).
    func seal(key: UnsafeRawPointer, nonce: UnsafeRawPointer, buffer: UnsafeMutableRawPointer,
              length: Int, ad: UnsafeRawBufferPointer?) -> Bool {
        precondition(length >= 0 && length <= Int(Int32.max) - ChaChaPoly.tagSize, "AEAD length out of range")
        let context = sealContext
        let text = buffer.assumingMemoryBound(to: UInt8.self)
        var produced: Int32 = 0
        var ok = EVP_EncryptInit_ex(context, nil, nil, key.assumingMemoryBound(to: UInt8.self),
                                    nonce.assumingMemoryBound(to: UInt8.self)) == 1
        if ok, let ad, ad.count > 0 {
            ok = EVP_EncryptUpdate(context, nil, &produced, ad.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                   Int32(ad.count)) == 1
        }
        if ok, length > 0 {
            ok = EVP_EncryptUpdate(context, text, &produced, text, Int32(length)) == 1 && Int(produced) == length
        }
        // A stream cipher has nothing left to write at Final; it finishes the Poly1305 tag.
        ok = ok && EVP_EncryptFinal_ex(context, text + length, &produced) == 1 && produced == 0
        ok = ok && EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, Int32(ChaChaPoly.tagSize), text + length) == 1
        if !ok {
            buffer.initializeMemory(as: UInt8.self, repeating: 0, count: length + ChaChaPoly.tagSize)
            ERR_clear_error()
        }
        return ok
    }

    /// Open with an arbitrary 12-byte nonce and optional associated data.
    func open(key: UnsafeRawPointer, nonce: UnsafeRawPointer, buffer: UnsafeMutableRawPointer,
              length: Int, ad: UnsafeRawBufferPointer?) -> Bool {
        guard length >= ChaChaPoly.tagSize else { return false }
        precondition(length <= Int(Int32.max), "AEAD length out of range")
        let context = openContext
        let text = buffer.assumingMemoryBound(to: UInt8.self)
        let textLength = length - ChaChaPoly.tagSize
        var produced: Int32 = 0
        var ok = EVP_DecryptInit_ex(context, nil, nil, key.assumingMemoryBound(to: UInt8.self),
                                    nonce.assumingMemoryBound(to: UInt8.self)) == 1
        // The expected tag is copied into the context; Final compares against it.
        ok = ok && EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_TAG, Int32(ChaChaPoly.tagSize),
                                       text + textLength) == 1
        if ok, let ad, ad.count > 0 {
            ok = EVP_DecryptUpdate(context, nil, &produced, ad.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                   Int32(ad.count)) == 1
        }
        if ok, textLength > 0 {
            ok = EVP_DecryptUpdate(context, text, &produced, text, Int32(textLength)) == 1
                && Int(produced) == textLength
        }
        ok = ok && EVP_DecryptFinal_ex(context, text + textLength, &produced) == 1 && produced == 0
        if !ok {
            buffer.initializeMemory(as: UInt8.self, repeating: 0, count: textLength)
            ERR_clear_error()
        }
        return ok
    }
}
