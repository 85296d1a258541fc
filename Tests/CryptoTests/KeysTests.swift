import XCTest
@testable import Crypto

final class KeysTests: XCTestCase {
    // Known encodings (32 bytes 00..1f, 32 x ff, 32 x 00), checked with Python's base64 module.
    let known: [(bytes: [UInt8], base64: String)] = [
        (sequence(32), "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
        ([UInt8](repeating: 0xff, count: 32), "//////////////////////////////////////////8="),
        ([UInt8](repeating: 0, count: 32), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
    ]

    let badBase64: [(String, String)] = [
        ("43 characters", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"),
        ("45 characters", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=="),
        ("trailing newline", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"),
        ("leading space", " AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
        ("invalid character", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxw*Hh8="),
        ("URL-safe alphabet", "__________________________________________8="),
        ("decodes to 31 bytes", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg=="),
        ("decodes to 33 bytes", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g"),
        ("non-zero unused bits", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9="),
        ("padding in the middle", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBk=GxwdHh8="),
        ("empty", ""),
        ("non-ASCII", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHé="),
    ]

    let badHex: [(String, String)] = [
        ("63 digits", String(repeating: "a", count: 63)),
        ("65 digits", String(repeating: "a", count: 65)),
        ("non-hex digit", String(repeating: "a", count: 63) + "g"),
        ("0x prefix", "0x" + String(repeating: "a", count: 62)),
        ("space", String(repeating: "a", count: 31) + " " + String(repeating: "a", count: 32)),
        ("empty", ""),
    ]

    func testKnownBase64() {
        for (bytes, text) in known {
            XCTAssertEqual(Key32(bytes: bytes)?.base64, text)
            XCTAssertEqual(Key32(base64: text)?.bytes, bytes, text)
            XCTAssertEqual(SecretKey(bytes: bytes)?.base64, text)
            XCTAssertEqual(SecretKey(base64: text)?.bytes, bytes, text)
        }
    }

    func testHexIsLowercaseAndAcceptsBothCases() {
        let bytes = sequence(32, from: 0xe0)
        let key = Key32(bytes: bytes)!
        XCTAssertEqual(key.hex, hexString(bytes))
        XCTAssertEqual(Key32(hex: key.hex), key)
        XCTAssertEqual(Key32(hex: key.hex.uppercased()), key)
        XCTAssertEqual(SecretKey(hex: key.hex.uppercased())?.bytes, bytes)
        XCTAssertEqual(SecretKey(bytes: bytes)?.hex, key.hex)
    }

    func testRandomRoundTrips() {
        for _ in 0..<64 {
            let bytes = SecureRandom.bytes(32)
            let key = Key32(bytes: bytes)!
            XCTAssertEqual(Key32(base64: key.base64), key)
            XCTAssertEqual(Key32(hex: key.hex), key)
            XCTAssertEqual(key.description, key.base64)
            let secret = SecretKey(bytes: bytes)!
            XCTAssertEqual(SecretKey(base64: secret.base64)?.bytes, bytes)
            XCTAssertEqual(SecretKey(hex: secret.hex)?.bytes, bytes)
            XCTAssertEqual(secret.base64, key.base64)
        }
    }

    func testRejectsBadBase64() {
        for (name, text) in badBase64 {
            XCTAssertNil(Key32(base64: text), name)
            XCTAssertNil(SecretKey(base64: text), name)
        }
    }

    func testRejectsBadHex() {
        for (name, text) in badHex {
            XCTAssertNil(Key32(hex: text), name)
            XCTAssertNil(SecretKey(hex: text), name)
        }
    }

    func testRejectsWrongByteCounts() {
        for count in [0, 1, 31, 33, 64] {
            XCTAssertNil(Key32(bytes: [UInt8](repeating: 1, count: count)), "\(count)")
            XCTAssertNil(SecretKey(bytes: [UInt8](repeating: 1, count: count)), "\(count)")
        }
        XCTAssertNotNil(Key32(bytes: sequence(32)[...]))   // any Collection, not only Array
    }

    func testKey32IsAnInlineValue() {
        XCTAssertEqual(MemoryLayout<Key32>.size, 32)
        XCTAssertTrue(Key32().isZero)
        XCTAssertEqual(Key32().bytes, [UInt8](repeating: 0, count: 32))
        var oneBit = [UInt8](repeating: 0, count: 32)
        oneBit[31] = 0x80
        XCTAssertFalse(Key32(bytes: oneBit)!.isZero)
    }

    func testKey32EqualityAndHashing() {
        let a = Key32(bytes: sequence(32))!
        let b = Key32(bytes: sequence(32))!
        var differentLastByte = sequence(32)
        differentLastByte[31] ^= 1
        let c = Key32(bytes: differentLastByte)!
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
        XCTAssertEqual(Set([a, b, c]).count, 2)
        XCTAssertEqual(a.withUnsafeBytes { Array($0) }, sequence(32))
        let copied = sequence(32).withUnsafeBytes { Key32(copying: $0.baseAddress!) }
        XCTAssertEqual(copied, a)
    }

    func testSecretKeyZeroAndEquality() {
        XCTAssertTrue(SecretKey().isZero)
        XCTAssertEqual(SecretKey().bytes, [UInt8](repeating: 0, count: 32))
        let random = SecretKey.random()
        XCTAssertFalse(random.isZero)
        XCTAssertFalse(random.constantTimeEquals(SecretKey.random()))
        XCTAssertTrue(random.constantTimeEquals(SecretKey(bytes: random.bytes)!))
        XCTAssertTrue(SecretKey().constantTimeEquals(SecretKey()))
        var lastBit = [UInt8](repeating: 0, count: 32)
        lastBit[31] = 1
        let almostZero = SecretKey(bytes: lastBit)!
        XCTAssertFalse(almostZero.isZero)
        XCTAssertFalse(almostZero.constantTimeEquals(SecretKey()))
    }

    func testSecretKeyPointerIsStableAndHoldsTheBytes() {
        let bytes = sequence(32, from: 7)
        let key = SecretKey(bytes: bytes)!
        let pointer = key.unsafePointer
        XCTAssertEqual(Array(UnsafeRawBufferPointer(start: pointer, count: 32)), bytes)
        XCTAssertEqual(key.withUnsafeBytes { Array($0) }, bytes)
        _ = key.base64
        _ = key.bytes
        XCTAssertEqual(key.unsafePointer, pointer)
        withExtendedLifetime(key) {}
    }

    func testSecretKeyInitializerThatThrowsPropagates() {
        struct Failure: Error {}
        XCTAssertThrowsError(try SecretKey(initializingWith: { _ in throw Failure() }))
    }
}
