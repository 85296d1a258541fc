import XCTest
@testable import Dataplane

final class ReplayWindowTests: XCTestCase {
    static let T = ReplayWindow.windowSize
    static let R = ReplayWindow.rejectAfterMessages

    func testConstants() {
        XCTAssertEqual(ReplayWindow.windowSize, 8128)
        // 2^64 - 2^13 - 1
        XCTAssertEqual(ReplayWindow.rejectAfterMessages, 18_446_744_073_709_543_423)
        XCTAssertEqual(MemoryLayout<ReplayWindow>.size, 8 + 128 * 8, "the ring is stored inline")
    }

    /// Steps run in order on one window: (number, counter or nil for reset, expected result).
    static let steps: [(Int, UInt64?, Bool)] = [
        (1, 0, true),
        (2, 1, true),
        (3, 1, false),          // replay
        (4, 9, true),
        (5, 8, true),           // late but new
        (6, 7, true),
        (7, 7, false),
        (8, T, true),           // newest = T
        (9, T + 1, true),       // newest = T + 1
        (10, T, false),         // replay
        (11, T - 1, true),
        (12, 1, false),         // exactly T behind: still remembered
        (13, 2, true),          // T - 1 behind, never seen
        (14, 0, false),         // T + 1 behind: too old
        (15, 3, true),
        (16, 2 * T + 1, true),  // jump by T: clears 127 blocks, keeps the block holding T and T + 1
        (17, T + 1, false),     // exactly T behind and seen
        (18, T, false),         // T + 1 behind
        (19, T + 2, true),
        (20, 5 * T + 1, true),  // jump by 3T: clears the whole ring
        (21, 4 * T + 1, true),  // left edge of the window
        (22, 4 * T + 1, false),
        (23, 4 * T, false),     // just past the left edge
        (24, 4 * T + 2, true),  // just inside
        (25, 2 * T + 1, false),
        (26, 5 * T + 1, false), // the newest again
        (27, 5 * T + 2, true),
        (28, R, false),         // the limit itself
        (29, R + 1, false),
        (30, UInt64.max, false),
        (31, R - 1, true),      // the last usable counter
        (32, R - 1, false),
        (33, R, false),
        (34, R - 2, true),
        (35, R - 2, false),
        (36, R - 1 - T, true),  // left edge below the limit
        (37, R - 2 - T, false),
        (38, 5 * T + 3, false),
        (39, 0, false),
        (40, nil, true),        // reset
        (41, 0, true),
        (42, 0, false),
        (43, R - 1, true),
        (44, 1, false),
        (45, nil, true),
        (46, 1, true),
        (47, 0, true),
        (48, 1, false),
        (49, 64 * 128, true),   // lands in the same ring slot as counter 0
        (50, 64 * 128 - T, true),
        (51, 0, false),
    ]

    func testNumberedTable() {
        var window = ReplayWindow()
        for (number, counter, expected) in Self.steps {
            guard let counter else {
                window.reset()
                continue
            }
            XCTAssertEqual(window.check(counter), expected, "step \(number): counter \(counter)")
        }
    }

    func testTableMatchesModel() {
        var model = NaiveReplay()
        for (number, counter, expected) in Self.steps {
            guard let counter else {
                model = NaiveReplay()
                continue
            }
            XCTAssertEqual(model.check(counter), expected, "model, step \(number)")
        }
    }

    func testInOrderAcrossManyRingTurns() {
        var window = ReplayWindow()
        for c: UInt64 in 0..<100_000 { XCTAssertTrue(window.check(c)) }
        for c: UInt64 in (100_000 - 1 - Self.T)..<100_000 { XCTAssertFalse(window.check(c)) }
        XCTAssertFalse(window.check(100_000 - 2 - Self.T))
        XCTAssertTrue(window.check(100_000))
    }

    /// A deliberately simple model: the set of counters accepted, and the window's newest counter.
    struct NaiveReplay {
        var newest: UInt64 = 0
        var seen: Set<UInt64> = []

        mutating func check(_ c: UInt64) -> Bool {
            if c >= ReplayWindow.rejectAfterMessages { return false }
            if c > newest {
                newest = c
                seen.insert(c)
                return true
            }
            if newest - c > ReplayWindow.windowSize { return false }
            return seen.insert(c).inserted
        }
    }

    func testRandomAgainstModel() {
        var rng = SeededRandom(seed: 0x6479)
        for run in 0..<4 {
            var window = ReplayWindow()
            var model = NaiveReplay()
            var base: UInt64 = run == 3 ? ReplayWindow.rejectAfterMessages - 200_000 : 0
            for step in 0..<60_000 {
                // Mostly close to the newest counter, sometimes far behind, sometimes a jump ahead.
                let c: UInt64
                switch Int.random(in: 0..<100, using: &rng) {
                case 0..<60:
                    c = base &+ UInt64.random(in: 0...70, using: &rng)
                    base &+= UInt64.random(in: 0...3, using: &rng)
                case 60..<90:
                    c = base &- UInt64.random(in: 0...(2 * Self.T), using: &rng)
                case 90..<99:
                    base &+= UInt64.random(in: 0...(3 * Self.T), using: &rng)
                    c = base
                default:
                    c = base &+ UInt64.random(in: 0...70_000, using: &rng)
                }
                let got = window.check(c)
                let want = model.check(c)
                if got != want {
                    XCTFail("run \(run) step \(step): counter \(c) gave \(got), model \(want)")
                    return
                }
                if step % 5000 == 4999 { model.seen = model.seen.filter { model.newest - $0 <= 2 * Self.T } }
            }
        }
    }
}
