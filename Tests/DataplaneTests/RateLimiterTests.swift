import Foundation
import Synchronization
import XCTest
@testable import Dataplane

final class RateLimiterTests: XCTestCase {
    static let ms: UInt64 = 1_000_000
    static let s: UInt64 = 1_000_000_000
    let a = IPAddress("198.18.0.1")!
    let b = IPAddress("198.18.0.2")!

    /// Runs (time in ms, source, expected) in order on one limiter.
    private func run(_ limiter: RateLimiter, _ steps: [(UInt64, IPAddress, Bool)],
                     file: StaticString = #filePath, line: UInt = #line) {
        for (i, (t, source, expected)) in steps.enumerated() {
            XCTAssertEqual(limiter.allow(source, now: t * Self.ms), expected, "step \(i + 1): t=\(t) ms \(source)",
                           file: file, line: line)
        }
    }

    func testBurstThenRate() {
        let limiter = RateLimiter()
        XCTAssertEqual(limiter.packetCost, 50 * Self.ms)
        XCTAssertEqual(limiter.tokenMax, 250 * Self.ms)
        let start: UInt64 = 7_000  // any origin
        run(limiter, [
            (start, a, true), (start, a, true), (start, a, true), (start, a, true), (start, a, true),  // burst 5
            (start, a, false),
            (start, b, true),                                   // another source has its own bucket
            (start + 49, a, false),                             // 49 ms is not a whole packet
            (start + 50, a, true), (start + 50, a, false),      // 50 ms earns one
            (start + 150, a, true), (start + 150, a, true), (start + 150, a, false),
            (start + 10_000, a, true), (start + 10_000, a, true), (start + 10_000, a, true),
            (start + 10_000, a, true), (start + 10_000, a, true), (start + 10_000, a, false),  // capped at burst
        ])
    }

    func testSteadyRates() {
        let limiter = RateLimiter()
        var allowed = 0
        // Exactly 20/s is always allowed.
        for k: UInt64 in 0..<200 where limiter.allow(a, now: k * 50 * Self.ms) { allowed += 1 }
        XCTAssertEqual(allowed, 200)
        // 100/s for 10 s gets the burst plus 20/s.
        allowed = 0
        for k: UInt64 in 0..<1000 where limiter.allow(b, now: 100 * Self.s + k * 10 * Self.ms) { allowed += 1 }
        XCTAssertEqual(allowed, 5 + 199)
    }

    func testIPv6GroupedBySlash64() {
        let limiter = RateLimiter(packetsPerSecond: 20, burst: 1)
        run(limiter, [
            (0, IPAddress("fd00:1:2:3::1")!, true),
            (0, IPAddress("fd00:1:2:3:ffff:ffff:ffff:ffff")!, false),  // same /64
            (0, IPAddress("fd00:1:2:4::1")!, true),                     // next /64
            (0, IPAddress("::ffff:198.18.0.1")!, true),                 // mapped is not the v4 source
            (0, a, true),
            (0, a, false),
            (50, IPAddress("fd00:1:2:3::2")!, true),
        ])
    }

    func testOtherRates() {
        let limiter = RateLimiter(packetsPerSecond: 1, burst: 2)
        run(limiter, [(0, a, true), (0, a, true), (0, a, false), (999, a, false), (1000, a, true), (1000, a, false)])
    }

    func testClockGoingBackwardsEarnsNothing() {
        let limiter = RateLimiter(packetsPerSecond: 20, burst: 1)
        run(limiter, [(1000, a, true), (500, a, false), (1000, a, false), (1049, a, false), (1050, a, true)])
    }

    func testGarbageCollection() {
        let limiter = RateLimiter()
        _ = limiter.allow(a, now: 0)
        _ = limiter.allow(b, now: 500 * Self.ms)
        XCTAssertEqual(limiter.entryCount, 2)
        limiter.gc(now: 1000 * Self.ms)  // a idle exactly 1 s: kept
        XCTAssertEqual(limiter.entryCount, 2)
        limiter.gc(now: 1001 * Self.ms)
        XCTAssertEqual(limiter.entryCount, 1)
        limiter.gc(now: 1501 * Self.ms)
        XCTAssertEqual(limiter.entryCount, 0)
        // A source that comes back after being collected starts with a full bucket, as it would have anyway.
        run(limiter, [(2000, a, true), (2000, a, true), (2000, a, true), (2000, a, true), (2000, a, true),
                      (2000, a, false)])
    }

    func testTableIsBounded() {
        let limiter = RateLimiter(maxEntries: 3)
        let sources = (1...5).map { IPAddress.v4(0x0A00_0000 + UInt32($0)) }
        run(limiter, [
            (0, sources[0], true), (0, sources[1], true), (0, sources[2], true),
            (0, sources[3], false),             // full: new sources refused
            (200, sources[0], true),            // known sources still served
            (900, sources[4], false),           // still full, nothing idle yet
            (1101, sources[3], true),           // full, but sources 1 and 2 are idle past 1 s and get dropped
            (1101, sources[4], true),
            (1101, IPAddress("10.0.0.9")!, false),
        ])
        XCTAssertEqual(limiter.entryCount, 3)
    }

    func testConcurrentUse() {
        let limiter = RateLimiter(maxEntries: 100_000)
        let allowed = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            var mine = 0
            for k in 0..<2000 {
                let source = IPAddress.v4(UInt32(k % 50))
                if limiter.allow(source, now: 0) { mine += 1 }
            }
            allowed.withLock { $0 += mine }
        }
        // Each of the 50 sources gets exactly its burst.
        XCTAssertEqual(allowed.withLock { $0 }, 50 * 5)
        XCTAssertEqual(limiter.entryCount, 50)
    }
}
