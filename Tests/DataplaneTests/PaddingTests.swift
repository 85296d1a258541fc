// Transport padding: the last MTU-sized unit of a packet is padded to a multiple of 16, never past the MTU.
import XCTest
@testable import Dataplane

final class PaddingTests: XCTestCase {
    /// Each case: inner length, MTU, padded length.
    static let cases: [(Int, Int, Int)] = [
        (0, 1420, 0),          // a keepalive stays empty
        (1, 1420, 16),
        (15, 1420, 16),
        (16, 1420, 16),
        (17, 1420, 32),
        (1404, 1420, 1408),
        (1408, 1420, 1408),
        (1409, 1420, 1420),    // 1424 would pass the MTU
        (1410, 1420, 1420),
        (1419, 1420, 1420),
        (1420, 1420, 1420),
        (1, 1280, 16),
        (1264, 1280, 1264),
        (1265, 1280, 1280),
        (1279, 1280, 1280),
        (1280, 1280, 1280),
        (1480, 1500, 1488),
        (1490, 1500, 1500),    // 1504 would pass the MTU
        (1497, 1500, 1500),
        (1500, 1500, 1500),
        // Longer than the MTU: only the remainder past the last whole MTU is padded.
        (1421, 1420, 1436),     // remainder 1 → 16
        (2839, 1420, 2840),     // remainder 1419 → 1420
        (2840, 1420, 2840),     // remainder 0
        (2841, 1420, 2856),
        (3000, 1420, 3000),     // remainder 160, already aligned
        (3001, 1420, 3016),
        (1281, 1280, 1296),
        // No MTU: plain alignment.
        (0, 0, 0),
        (1, 0, 16),
        (16, 0, 16),
        (17, 0, 32),
        (1420, 0, 1424),
        (3000, 0, 3008),
        (65535, 0, 65536),
    ]

    func testTable() {
        for (length, mtu, padded) in Self.cases {
            XCTAssertEqual(paddedLength(length, mtu: mtu), padded, "length \(length), mtu \(mtu)")
        }
    }

    /// The rules, checked for every length up to three MTUs: never shorter, at most 15 bytes added; within the
    /// MTU the result is a multiple of 16 or the MTU itself, and never more than the MTU.
    func testProperties() {
        for mtu in [0, 16, 17, 576, 1280, 1420, 1500, 9000] {
            var failures: [Int] = []
            for length in 0...max(3 * mtu, 1000) {
                let padded = paddedLength(length, mtu: mtu)
                var ok = padded >= length && padded - length < 16
                if mtu == 0 {
                    ok = ok && padded % 16 == 0
                } else if length <= mtu {
                    ok = ok && padded <= mtu && (padded % 16 == 0 || padded == mtu)
                }
                if !ok { failures.append(length) }
            }
            XCTAssertEqual(failures, [], "mtu \(mtu): lengths that break the rules")
        }
    }
}
