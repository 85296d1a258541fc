import XCTest
@testable import Crypto

final class X25519Tests: XCTestCase {
    private func dh(_ scalar: [UInt8], _ point: [UInt8]) -> [UInt8]? {
        X25519.sharedSecret(SecretKey(bytes: scalar)!, Key32(bytes: point)!)?.bytes
    }

    /// RFC 7748 §5.2: (scalar, u-coordinate, output). The scalars are unclamped and the second
    /// u has its top bit set, which must be ignored.
    let scalarMultiplication: [(String, String, String)] = [
        ("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
         "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
         "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"),
        ("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
         "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
         "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"),
    ]

    func testRFC7748ScalarMultiplication() {
        for (scalar, u, expected) in scalarMultiplication {
            XCTAssertEqual(dh(hex(scalar), hex(u)), hex(expected), scalar)
        }
    }

    /// RFC 7748 §5.2 iteration: k = u = 9; then (k, u) = (X25519(k, u), k).
    func testRFC7748Iterated() {
        let expected: [Int: String] = [
            1: "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079",
            1000: "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51",
        ]
        var k = [UInt8](repeating: 0, count: 32)
        k[0] = 9
        var u = k
        for iteration in 1...1000 {
            let next = dh(k, u)!
            u = k
            k = next
            if let want = expected[iteration] { XCTAssertEqual(hexString(k), want, "\(iteration)") }
        }
    }

    /// RFC 7748 §6.1 Alice and Bob.
    func testRFC7748DiffieHellman() {
        let alice = SecretKey(hex: "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")!
        let bob = SecretKey(hex: "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")!
        let alicePublic = X25519.publicKey(for: alice)
        let bobPublic = X25519.publicKey(for: bob)
        XCTAssertEqual(alicePublic.hex, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        XCTAssertEqual(bobPublic.hex, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        let shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
        XCTAssertEqual(X25519.sharedSecret(alice, bobPublic)?.hex, shared)
        XCTAssertEqual(X25519.sharedSecret(bob, alicePublic)?.hex, shared)
    }

    /// Pairs produced by wireguard-tools: `wg genkey | tee k | wg pubkey`, and `wg pubkey` of an
    /// unclamped key (32 x ff), which wg clamps internally.
    let wgPairs: [(privateKey: String, publicKey: String)] = [
        ("qB1oZR+4+VsQiotFnk2NDux/h2suyWPCXpBG6auFLXw=", "/jpDbFg0DhdIwH/OLzL+LqXIBu3e+LOy2qfKDJUu40c="),
        ("//////////////////////////////////////////8=", "hHwNLDdSNPNl5mCVUYejc1oPdhPRYJ06ak2MU66qWiI="),
    ]

    func testPublicKeyMatchesWgPubkey() {
        for (privateKey, publicKey) in wgPairs {
            XCTAssertEqual(X25519.publicKey(for: SecretKey(base64: privateKey)!).base64, publicKey)
        }
    }

    /// Points of small order (and non-canonical encodings of them) give an all-zero result,
    /// which must be refused.
    let lowOrderPoints = [
        "0000000000000000000000000000000000000000000000000000000000000000",   // 0
        "0100000000000000000000000000000000000000000000000000000000000000",   // 1
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",   // order 8
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",   // order 8
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",   // p - 1
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",   // p
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",   // p + 1
    ]

    func testLowOrderPointsGiveNil() {
        let privateKey = X25519.generatePrivateKey()
        for point in lowOrderPoints {
            XCTAssertNil(X25519.sharedSecret(privateKey, Key32(hex: point)!), point)
        }
    }

    func testGeneratedKeysAreClampedLikeWgGenkey() {
        for _ in 0..<32 {
            let key = X25519.generatePrivateKey().bytes
            XCTAssertEqual(key[0] & 7, 0)
            XCTAssertEqual(key[31] & 0x80, 0)
            XCTAssertEqual(key[31] & 0x40, 0x40)
        }
    }

    func testUnclampedKeyHasTheSamePublicKeyAsItsClampedForm() {
        for _ in 0..<8 {
            var raw = SecureRandom.bytes(32)
            raw[0] |= 7
            raw[31] |= 0x80
            raw[31] &= ~0x40
            var clamped = raw
            clamped[0] &= 248
            clamped[31] &= 127
            clamped[31] |= 64
            XCTAssertEqual(X25519.publicKey(for: SecretKey(bytes: raw)!),
                           X25519.publicKey(for: SecretKey(bytes: clamped)!))
        }
    }

    func testRandomPairsAgree() {
        for _ in 0..<8 {
            let a = X25519.generatePrivateKey()
            let b = X25519.generatePrivateKey()
            let ab = X25519.sharedSecret(a, X25519.publicKey(for: b))!
            let ba = X25519.sharedSecret(b, X25519.publicKey(for: a))!
            XCTAssertTrue(ab.constantTimeEquals(ba))
            XCTAssertFalse(ab.isZero)
        }
    }
}
