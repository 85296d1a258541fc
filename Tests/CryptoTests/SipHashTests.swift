import XCTest
@testable import Crypto

final class SipHashTests: XCTestCase {
    /// SipHash-2-4 reference vectors, key 00..0f, message 00..(n-1). The reference lists output
    /// bytes; read little-endian they are these integers (e.g. e5 45 be 49 61 ca 29 a1).
    let vectors: [(Int, UInt64)] = [
        (0, 0x726fdb47dd0e0e31),
        (15, 0xa129ca6149be45e5),   // the example in the SipHash paper, Appendix A
    ]

    func testReferenceVectors() {
        let key = sequence(16)
        for (length, expected) in vectors {
            let message = sequence(length)
            XCTAssertEqual(SipHash.hash(key: key, data: message), expected, "\(length) bytes")
            let fromPointers = key.withUnsafeBytes { key in
                message.withUnsafeBytes { data in
                    SipHash.hash(key: key.baseAddress!, data: data.baseAddress ?? key.baseAddress!, length: data.count)
                }
            }
            XCTAssertEqual(fromPointers, expected, "\(length) bytes, pointer API")
        }
    }

    func testKeyAndDataMatter() {
        let key = SecureRandom.bytes(16)
        var otherKey = key
        otherKey[15] ^= 1
        let data = Array("10.0.0.1:51820".utf8)
        XCTAssertEqual(SipHash.hash(key: key, data: data), SipHash.hash(key: key, data: data))
        XCTAssertNotEqual(SipHash.hash(key: key, data: data), SipHash.hash(key: otherKey, data: data))
        XCTAssertNotEqual(SipHash.hash(key: key, data: data), SipHash.hash(key: key, data: data + [0]))
    }
}
