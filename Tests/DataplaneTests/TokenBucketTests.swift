// The --rate token bucket on its own: exact charging, the depth, waits, and the bound over arbitrary intervals.
import Dataplane
import XCTest

final class TokenBucketTests: XCTestCase {
    private let t0: UInt64 = 1_000_000_000_000

    func testWaitsAndAvailability() {
        // 1 MB/s, 3000-byte bucket: 1 byte per microsecond.
        struct Step { let at: UInt64; let ask: UInt64; let wait: UInt64; let take: Bool }
        let table: [Step] = [
            Step(at: 0, ask: 3000, wait: 0, take: true),         // a full bucket lets its depth through at once
            Step(at: 0, ask: 1, wait: 1_000, take: false),       // then one byte costs 1 µs
            Step(at: 500_000, ask: 1500, wait: 1_000_000, take: false),   // 0.5 ms refilled 500 bytes only
            Step(at: 2_000_000, ask: 1500, wait: 0, take: true),
            Step(at: 2_000_000, ask: 1500, wait: 1_000_000, take: false), // 500 bytes left
            Step(at: 10_000_000, ask: 3000, wait: 0, take: false),         // idle refills, never above the depth
            Step(at: 10_000_000, ask: 3001, wait: 1_000, take: false),
        ]
        var b = TokenBucket(bytesPerSecond: 1_000_000, depthBytes: 3000, now: t0)
        XCTAssertEqual(b.depthNanoseconds, 3_000_000)
        for (i, s) in table.enumerated() {
            XCTAssertEqual(b.wait(forBytes: s.ask, now: t0 + s.at), s.wait, "step \(i)")
            if s.take { b.consume(bytes: s.ask, now: t0 + s.at) }
        }
        XCTAssertEqual(b.available(now: t0 + 10_000_000), 3000)
    }

    func testDebtIsRepaidBeforeMoreGoes() {
        var b = TokenBucket(bytesPerSecond: 1_000_000, depthBytes: 3000, now: t0)
        b.consume(bytes: 13_000, now: t0)          // 10 kB beyond the depth: 10 ms of debt
        XCTAssertEqual(b.available(now: t0), 0)
        XCTAssertEqual(b.wait(forBytes: 1000, now: t0), 11_000_000)
        XCTAssertEqual(b.wait(forBytes: 1000, now: t0 + 11_000_000), 0)
    }

    func testSmallPacketsCostExactlyTheirBytes() {
        // At 3 GB/s a 7-byte charge is 2.33 ns. A million of them must cost 7e6 / 3 = 2,333,333 ns (the remainder
        // is carried), not a million rounded-down 2 ns charges. The wait is that minus the 1 ns depth.
        var b = TokenBucket(bytesPerSecond: 3_000_000_000, depthBytes: 1, now: t0)
        XCTAssertEqual(b.depthNanoseconds, 1)
        for _ in 0..<1_000_000 { b.consume(bytes: 7, now: t0) }
        XCTAssertEqual(b.wait(forBytes: 0, now: t0), 2_333_332)
    }

    func testBoundHoldsOverEveryInterval() {
        // A greedy sender that sends whenever the bucket allows, packets of varying sizes at random times: over
        // every interval the bytes sent stay within rate·T + depth, and over the whole run come close to rate·T.
        let rate: UInt64 = 11_875_000, depth: UInt64 = 35_625, mtu: UInt64 = 1500
        var b = TokenBucket(bytesPerSecond: rate, depthBytes: depth, now: t0)
        var rng = SeededRandom(seed: 7)
        var sends: [(UInt64, UInt64)] = []
        var now = t0
        while now < t0 + 200_000_000 {
            let size = 60 + rng.next() % (mtu - 60)
            if b.wait(forBytes: mtu, now: now) == 0 {
                b.consume(bytes: size, now: now)
                sends.append((now, size))
            } else {
                now += 1 + rng.next() % 300_000
            }
        }
        var worst: Int64 = .min
        for i in 0..<sends.count {
            var bytes: UInt64 = 0
            for j in i..<sends.count {
                bytes += sends[j].1
                let allowed = rate * (sends[j].0 - sends[i].0) / 1_000_000_000 + depth
                worst = max(worst, Int64(bytes) - Int64(allowed))
            }
        }
        XCTAssertLessThanOrEqual(worst, 1, "some interval carried more than rate·T + depth")
        let total = sends.reduce(0) { $0 + $1.1 }
        let ideal = rate * (now - t0) / 1_000_000_000
        XCTAssertGreaterThan(Double(total), 0.97 * Double(ideal), "a saturated sender reaches the rate")
    }
}
