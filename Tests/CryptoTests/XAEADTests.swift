import XCTest
@testable import Crypto

final class XAEADTests: XCTestCase {
    // draft-irtf-cfrg-xchacha-03 §A.3.1.
    let key = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
    let nonce = hex("404142434445464748494a4b4c4d4e4f5051525354555657")
    let ad = hex("50515253c0c1c2c3c4c5c6c7")
    let plaintext = Array("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".utf8)
    let sealed = hex("""
        bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb
        731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452
        2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9
        21f9664c97637da9768812f615c68b13b52e
        c0875924c1c7987947deafd8780acf49
        """)

    func testDraftVector() {
        XCTAssertEqual(XChaChaPoly.seal(key: key, nonce: nonce, plaintext: plaintext, ad: ad), sealed)
        XCTAssertEqual(XChaChaPoly.open(key: key, nonce: nonce, ciphertext: sealed, ad: ad), plaintext)
    }

    func testRoundTripWithCookieSizes() {
        // A cookie reply seals a 16-byte cookie with the 16-byte mac1 as associated data.
        for length in [0, 1, 16, 100] {
            let key = SecureRandom.bytes(32)
            let nonce = SecureRandom.bytes(24)
            let plaintext = SecureRandom.bytes(length)
            let ad = SecureRandom.bytes(16)
            let sealed = XChaChaPoly.seal(key: key, nonce: nonce, plaintext: plaintext, ad: ad)
            XCTAssertEqual(sealed.count, length + 16)
            XCTAssertEqual(XChaChaPoly.open(key: key, nonce: nonce, ciphertext: sealed, ad: ad), plaintext)
        }
    }

    func testTamperingFails() {
        var flippedText = sealed
        flippedText[0] ^= 1
        var flippedTag = sealed
        flippedTag[sealed.count - 1] ^= 1
        var otherNonce = nonce
        otherNonce[23] ^= 1   // the last byte feeds ChaCha20, not HChaCha20
        var otherNonceHead = nonce
        otherNonceHead[0] ^= 1   // the first 16 bytes feed HChaCha20
        var otherKey = key
        otherKey[5] ^= 1
        let cases: [(String, [UInt8], [UInt8], [UInt8], [UInt8])] = [
            ("bit in ciphertext", key, nonce, flippedText, ad),
            ("bit in tag", key, nonce, flippedTag, ad),
            ("nonce tail", key, otherNonce, sealed, ad),
            ("nonce head", key, otherNonceHead, sealed, ad),
            ("wrong key", otherKey, nonce, sealed, ad),
            ("wrong associated data", key, nonce, sealed, Array(ad.dropLast())),
            ("shorter than a tag", key, nonce, Array(sealed.prefix(15)), ad),
            ("empty", key, nonce, [], ad),
        ]
        for (name, key, nonce, ciphertext, ad) in cases {
            XCTAssertNil(XChaChaPoly.open(key: key, nonce: nonce, ciphertext: ciphertext, ad: ad), name)
        }
    }
}
