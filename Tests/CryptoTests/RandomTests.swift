import XCTest
@testable import Crypto

final class RandomTests: XCTestCase {
    func testInitializeIsRepeatable() {
        XCTAssertTrue(CryptoLibrary.initialize())
        XCTAssertTrue(CryptoLibrary.initialize())
    }

    func testBytesHaveTheRequestedLengthAndDiffer() {
        for count in [0, 1, 16, 32, 1000] {
            XCTAssertEqual(SecureRandom.bytes(count).count, count)
        }
        XCTAssertNotEqual(SecureRandom.bytes(32), SecureRandom.bytes(32))
    }

    func testFillCoversTheWholeBuffer() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        buffer.withUnsafeMutableBytes { SecureRandom.fill($0) }
        // A fill that stopped early would leave the tail zero.
        XCTAssertTrue(buffer[4064...].contains { $0 != 0 })
        XCTAssertGreaterThan(Set(buffer).count, 200)
        SecureRandom.fill(UnsafeMutableRawBufferPointer(start: nil, count: 0))
    }

    func testIntegers() {
        XCTAssertNotEqual(SecureRandom.uint64(), SecureRandom.uint64())
        XCTAssertGreaterThan(Set((0..<8).map { _ in SecureRandom.uint32() }).count, 1)
    }

    func testMemoryZero() {
        var buffer = [UInt8](repeating: 0xaa, count: 100)
        buffer.withUnsafeMutableBytes { Memory.zero($0) }
        XCTAssertEqual(buffer, [UInt8](repeating: 0, count: 100))
        Memory.zero(UnsafeMutableRawBufferPointer(start: nil, count: 0))
    }
}
