import XCTest
@testable import Dataplane

final class TAI64NTests: XCTestCase {
    /// Unix seconds and nanoseconds, and the 12 bytes expected.
    static let encodings: [(UInt64, UInt32, [UInt8])] = [
        (0, 0, [0x40, 0, 0, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0]),
        (1, 0, [0x40, 0, 0, 0, 0, 0, 0, 0x0b, 0, 0, 0, 0]),
        // 2^24 - 1 ns rounds down to 0.
        (0, 0x00ff_ffff, [0x40, 0, 0, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0]),
        (0, 0x0100_0000, [0x40, 0, 0, 0, 0, 0, 0, 0x0a, 0x01, 0, 0, 0]),
        // 999,999,999 ns = 0x3B9AC9FF -> 0x3B000000.
        (0, 999_999_999, [0x40, 0, 0, 0, 0, 0, 0, 0x0a, 0x3b, 0, 0, 0]),
        // 2025-01-01T00:00:00Z = 1735689600 = 0x6774_8580; 0.5 s = 0x1DCD6500 -> 0x1D000000.
        (1_735_689_600, 500_000_000, [0x40, 0, 0, 0, 0x67, 0x74, 0x85, 0x8a, 0x1d, 0, 0, 0]),
        (0xffff_ffff, 0, [0x40, 0, 0, 1, 0, 0, 0, 0x09, 0, 0, 0, 0]),
    ]

    func testEncoding() {
        for (i, (seconds, nanoseconds, bytes)) in Self.encodings.enumerated() {
            let t = TAI64N(seconds: seconds, nanoseconds: nanoseconds)
            XCTAssertEqual(t.bytes, bytes, "case \(i)")
            XCTAssertEqual(TAI64N(bytes: bytes), t, "case \(i)")
        }
        XCTAssertEqual(TAI64N.size, 12)
    }

    func testBytesAreTakenAsTheyAre() {
        let raw: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
        XCTAssertEqual(TAI64N(bytes: raw)?.bytes, raw)
        XCTAssertNil(TAI64N(bytes: Array(raw.dropLast())))
        XCTAssertNil(TAI64N(bytes: raw + [0]))
        XCTAssertNil(TAI64N(bytes: []))
        var buffer = [UInt8](repeating: 0, count: 15)
        buffer.withUnsafeMutableBytes { p in
            TAI64N(bytes: raw)!.write(to: p.baseAddress! + 3)
            XCTAssertEqual(TAI64N(reading: p.baseAddress! + 3).bytes, raw)
        }
    }

    func testOrderingIsByteOrder() {
        var rng = SeededRandom(seed: 64)
        var values: [TAI64N] = []
        for _ in 0..<500 {
            var bytes = (0..<12).map { _ in UInt8.random(in: 0...3, using: &rng) }
            if Bool.random(using: &rng) { bytes[0] = 0xff }
            values.append(TAI64N(bytes: bytes)!)
        }
        for a in values.prefix(100) {
            for b in values {
                XCTAssertEqual(a < b, a.bytes.lexicographicallyPrecedes(b.bytes), "\(a.bytes) vs \(b.bytes)")
            }
        }
    }

    func testRoundingMakesNearbyTimesEqual() {
        let a = TAI64N(seconds: 100, nanoseconds: 0x0200_0001)
        let b = TAI64N(seconds: 100, nanoseconds: 0x02ff_ffff)
        let c = TAI64N(seconds: 100, nanoseconds: 0x0300_0000)
        XCTAssertEqual(a, b)
        XCTAssertFalse(a < b)
        XCTAssertLessThan(b, c)
        XCTAssertLessThan(TAI64N(seconds: 100, nanoseconds: 999_999_999), TAI64N(seconds: 101, nanoseconds: 0))
    }

    func testNowIsCurrentAndRounded() {
        let now = TAI64N.now()
        // After 2024-01-01 and before 2200.
        XCTAssertGreaterThan(now, TAI64N(seconds: 1_704_067_200, nanoseconds: 0))
        XCTAssertLessThan(now, TAI64N(seconds: 7_258_118_400, nanoseconds: 0))
        XCTAssertEqual(now.nanoseconds & 0x00ff_ffff, 0)
        XCTAssertLessThan(now.nanoseconds, 1_000_000_000)
        XCTAssertLessThanOrEqual(now, TAI64N.now())
    }
}
