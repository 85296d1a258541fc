import XCTest
@testable import Crypto

final class AEADTests: XCTestCase {
    /// An RFC 8439 vector; its nonces are not WireGuard counters, so it goes through the raw-nonce core.
    struct Vector {
        let name: String
        let key: [UInt8]
        let nonce: [UInt8]
        let ad: [UInt8]
        let plaintext: [UInt8]
        let ciphertext: [UInt8]   // without the tag
        let tag: [UInt8]
    }

    /// Shared with the OpenSSL tests, which run the same vectors through the other library.
    static let vectors = [
        Vector(name: "RFC 8439 §2.8.2",
               key: hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"),
               nonce: hex("070000004041424344454647"),
               ad: hex("50515253c0c1c2c3c4c5c6c7"),
               plaintext: Array("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".utf8),
               ciphertext: hex("""
                   d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6
                   3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36
                   92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc
                   3ff4def08e4b7a9de576d26586cec64b6116
                   """),
               tag: hex("1ae10b594f09e26a7e902ecbd0600691")),
        Vector(name: "RFC 8439 Appendix A.5",
               key: hex("1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0"),
               nonce: hex("000000000102030405060708"),
               ad: hex("f33388860000000000004e91"),
               plaintext: hex("""
                   496e7465726e65742d4472616674732061726520647261667420646f63756d65
                   6e74732076616c696420666f722061206d6178696d756d206f6620736978206d
                   6f6e74687320616e64206d617920626520757064617465642c207265706c6163
                   65642c206f72206f62736f6c65746564206279206f7468657220646f63756d65
                   6e747320617420616e792074696d652e20497420697320696e617070726f7072
                   6961746520746f2075736520496e7465726e65742d4472616674732061732072
                   65666572656e6365206d6174657269616c206f7220746f206369746520746865
                   6d206f74686572207468616e206173202fe2809c776f726b20696e2070726f67
                   726573732e2fe2809d
                   """),
               ciphertext: hex("""
                   64a0861575861af460f062c79be643bd5e805cfd345cf389f108670ac76c8cb2
                   4c6cfc18755d43eea09ee94e382d26b0bdb7b73c321b0100d4f03b7f355894cf
                   332f830e710b97ce98c8a84abd0b948114ad176e008d33bd60f982b1ff37c855
                   9797a06ef4f0ef61c186324e2b3506383606907b6a7c02b0f9f6157b53c867e4
                   b9166c767b804d46a59b5216cde7a4e99040c5a40433225ee282a1b0a06c523e
                   af4534d7f83fa1155b0047718cbc546a0d072b04b3564eea1b422273f548271a
                   0bb2316053fa76991955ebd63159434ecebb4e466dae5a1073a6727627097a10
                   49e617d91d361094fa68f0ff77987130305beaba2eda04df997b714d6c6f2c29
                   a6ad5cb4022b02709b
                   """),
               tag: hex("eead9d67890cbb22392336fea1851f38")),
    ]

    private func sealRaw(_ v: Vector) -> [UInt8] {
        var buffer = v.plaintext + [UInt8](repeating: 0, count: 16)
        buffer.withUnsafeMutableBytes { buffer in
            v.ad.withUnsafeBytes { ad in
                ChaChaPoly.seal(key: v.key, nonce: v.nonce, buffer: buffer.baseAddress!, length: v.plaintext.count, ad: ad)
            }
        }
        return buffer
    }

    private func openRaw(_ v: Vector, _ sealed: [UInt8]) -> [UInt8]? {
        var buffer = sealed
        let ok = buffer.withUnsafeMutableBytes { buffer in
            v.ad.withUnsafeBytes { ad in
                ChaChaPoly.open(key: v.key, nonce: v.nonce, buffer: buffer.baseAddress!, length: buffer.count, ad: ad)
            }
        }
        return ok ? Array(buffer.dropLast(16)) : nil
    }

    func testRFC8439Vectors() {
        XCTAssertTrue(CryptoLibrary.initialize())
        for v in Self.vectors {
            XCTAssertEqual(sealRaw(v), v.ciphertext + v.tag, v.name)
            XCTAssertEqual(openRaw(v, v.ciphertext + v.tag), v.plaintext, v.name)
            var forged = v.ciphertext + v.tag
            forged[forged.count - 1] ^= 1
            XCTAssertNil(openRaw(v, forged), v.name)
        }
    }

    /// Counter c becomes the nonce 00000000 || le64(c).
    func testCounterNonceEncoding() {
        let table: [(UInt64, String)] = [
            (0, "000000000000000000000000"),
            (1, "000000000100000000000000"),
            (0x0102030405060708, "000000000807060504030201"),
            (UInt64.max, "00000000ffffffffffffffff"),
        ]
        let key = SecretKey(bytes: sequence(32, from: 0x80))!
        let plaintext = Array("Ladies and Gentlemen".utf8)
        for (counter, nonce) in table {
            let words = ChaChaPoly.nonce(counter: counter)
            XCTAssertEqual(hexString(withUnsafeBytes(of: words) { Array($0.prefix(12)) }), nonce)
            // The public counter API agrees with the raw-nonce core fed that nonce.
            let v = Vector(name: nonce, key: key.bytes, nonce: hex(nonce), ad: [1, 2, 3],
                           plaintext: plaintext, ciphertext: [], tag: [])
            XCTAssertEqual(ChaChaPoly.seal(key: key, counter: counter, plaintext: plaintext, ad: [1, 2, 3]), sealRaw(v))
        }
    }

    func testRoundTrip() {
        let key = SecretKey.random()
        for length in [0, 1, 15, 16, 17, 63, 64, 65, 1420, 9000] {
            let plaintext = SecureRandom.bytes(length)
            for ad in [[], [0x42], SecureRandom.bytes(32)] as [[UInt8]] {
                let sealed = ChaChaPoly.seal(key: key, counter: UInt64(length), plaintext: plaintext, ad: ad)
                XCTAssertEqual(sealed.count, length + ChaChaPoly.tagSize)
                XCTAssertEqual(ChaChaPoly.open(key: key, counter: UInt64(length), ciphertext: sealed, ad: ad), plaintext)
            }
        }
    }

    func testPointerAPIInPlace() {
        let key = SecretKey.random()
        let plaintext = SecureRandom.bytes(100)
        var buffer = plaintext + [UInt8](repeating: 0, count: 16)
        buffer.withUnsafeMutableBytes {
            ChaChaPoly.seal(key: key.unsafePointer, counter: 9, buffer: $0.baseAddress!, length: 100, ad: nil)
        }
        XCTAssertEqual(buffer, ChaChaPoly.seal(key: key, counter: 9, plaintext: plaintext, ad: []))
        let ok = buffer.withUnsafeMutableBytes {
            ChaChaPoly.open(key: key.unsafePointer, counter: 9, buffer: $0.baseAddress!, length: 116, ad: nil)
        }
        XCTAssertTrue(ok)
        XCTAssertEqual(Array(buffer.prefix(100)), plaintext)
        withExtendedLifetime(key) {}
    }

    func testTamperingFails() {
        let key = SecretKey.random()
        let plaintext = SecureRandom.bytes(64)
        let ad = Array("header".utf8)
        let sealed = ChaChaPoly.seal(key: key, counter: 7, plaintext: plaintext, ad: ad)
        var flippedText = sealed
        flippedText[10] ^= 0x01
        var flippedTag = sealed
        flippedTag[sealed.count - 3] ^= 0x80
        var flippedAD = ad
        flippedAD[0] ^= 0x20
        let cases: [(String, SecretKey, UInt64, [UInt8], [UInt8])] = [
            ("bit in ciphertext", key, 7, flippedText, ad),
            ("bit in tag", key, 7, flippedTag, ad),
            ("associated data", key, 7, sealed, flippedAD),
            ("missing associated data", key, 7, sealed, []),
            ("wrong counter", key, 8, sealed, ad),
            ("counter differs in the high half", key, 7 | 1 << 32, sealed, ad),
            ("wrong key", SecretKey.random(), 7, sealed, ad),
            ("truncated", key, 7, Array(sealed.dropLast()), ad),
            ("extended", key, 7, sealed + [0], ad),
        ]
        for (name, key, counter, ciphertext, ad) in cases {
            XCTAssertNil(ChaChaPoly.open(key: key, counter: counter, ciphertext: ciphertext, ad: ad), name)
        }
        XCTAssertEqual(ChaChaPoly.open(key: key, counter: 7, ciphertext: sealed, ad: ad), plaintext)
    }

    func testShorterThanATagFails() {
        let key = SecretKey.random()
        for length in 0..<16 {
            XCTAssertNil(ChaChaPoly.open(key: key, counter: 0, ciphertext: [UInt8](repeating: 0, count: length), ad: []))
            var buffer = [UInt8](repeating: 0, count: 16)
            let ok = buffer.withUnsafeMutableBytes {
                ChaChaPoly.open(key: key.unsafePointer, counter: 0, buffer: $0.baseAddress!, length: length, ad: nil)
            }
            XCTAssertFalse(ok)
        }
        // An empty plaintext still has a tag that must verify.
        let empty = ChaChaPoly.seal(key: key, counter: 0, plaintext: [], ad: [])
        XCTAssertEqual(empty.count, 16)
        XCTAssertEqual(ChaChaPoly.open(key: key, counter: 0, ciphertext: empty, ad: []), [])
        XCTAssertNil(ChaChaPoly.open(key: key, counter: 1, ciphertext: empty, ad: []))
        withExtendedLifetime(key) {}
    }
}
