// --rate through a whole device pair on a fake clock: A's transport datagrams, counted in outer bytes (IPv4 20 +
// UDP 8 + the message), never exceed rate · T + bucket depth, and a saturated sender comes close to rate · T.
//
// The clock moves in steps; after each the test waits (real time) until A has sent what the rate allows by then,
// so a slow machine only makes the test slower. With fq_codel the reader dequeues while tokens last, so a step
// must not exceed the bucket's 3 ms, and each observation waits for the datagrams already charged (settled);
// with --no-aqm a whole TUN read (up to a batch) is charged at once and paid
// for before the next read, so the bounds there have a batch of slack, and the fake clock moves at the pace of
// real time (the reader sleeps out its debt for real).
@testable import Dataplane
import Glibc
import TestSupport
import XCTest

final class ShaperTests: XCTestCase {
    private static let rate = Rate(bitsPerSecond: 16_000_000)   // 2,000,000 bytes/s

    /// Outer bytes of A's transport data datagrams (not handshakes or keepalives) in the network log.
    private func sentOuterBytes(_ pair: DevicePair) -> UInt64 {
        pair.network.recorded.reduce(0) { sum, d in
            d.from == pair.endpointA && d.bytes.count > 32 && d.bytes[0] == 4 ? sum + UInt64(d.bytes.count + 28) : sum
        }
    }

    private func run(aqm: Bool, packets: Int, steps: Int, stepNanoseconds: UInt64, slack: UInt64) throws {
        let clock = FakeClock()
        let pair = try DevicePair(threads: 1, clock: clock, aqm: aqm, rate: ShaperTests.rate)
        pair.start()
        defer { pair.stop() }
        pair.tunA.inject([DevicePair.packet(0)])
        XCTAssertEqual(pair.tunB.collect(atLeast: 1).count, 1, "handshake")
        pair.network.isRecording = true
        let bytesPerSecond = ShaperTests.rate.bytesPerSecond
        let depth = max(bytesPerSecond * 3 / 1000, 2 * 1504)   // EgressShaper: 3 ms or two full-size packets
        // 1000-byte payloads: inner 1028, padded 1040, message 1072, outer 1100.
        pair.tunA.inject((1...packets).map { DevicePair.packet($0, size: 1000) })
        let t0 = clock.now()
        var observed: [(UInt64, UInt64)] = [(t0, sentOuterBytes(pair))]
        for _ in 0..<steps {
            clock.advance(nanoseconds: stepNanoseconds)
            // Without fq_codel the reader sleeps out its debt in real time: keep the fake clock from running ahead.
            if !aqm { usleep(UInt32(stepNanoseconds / 1000)) }
            let elapsed = clock.now() - t0
            let due = bytesPerSecond * elapsed / 1_000_000_000
            let floor = due > slack ? due - slack : 0
            var sent = sentOuterBytes(pair)
            for _ in 0..<500 where sent < floor {
                usleep(1000)
                sent = sentOuterBytes(pair)
            }
            if aqm { sent = settled(pair, sent) }
            observed.append((clock.now(), sent))
        }
        usleep(20_000)
        observed.append((clock.now(), sentOuterBytes(pair)))
        // Every interval between two observations: bytes ≤ rate · T + depth (+ slack without fq_codel).
        var worst: Int64 = .min
        for i in 0..<observed.count {
            for j in i..<observed.count {
                let allowed = bytesPerSecond * (observed[j].0 - observed[i].0) / 1_000_000_000 + depth
                    + (aqm ? 0 : slack)
                worst = max(worst, Int64(observed[j].1) - Int64(observed[i].1) - Int64(allowed))
            }
        }
        XCTAssertLessThanOrEqual(worst, 0, "sent more than the rate allows over some interval")
        let total = observed.last!.1 - observed.first!.1
        let ideal = bytesPerSecond * (observed.last!.0 - t0) / 1_000_000_000
        print("shaper (\(aqm ? "fq_codel" : "FIFO")): \(total) outer bytes in \(Double(observed.last!.0 - t0) / 1e6) ms of fake time; rate allows \(ideal) + depth \(depth); worst interval excess \(worst)")
        XCTAssertGreaterThanOrEqual(total + (aqm ? 0 : slack), ideal * 95 / 100,
                                    "a saturated sender falls short of the rate")
        XCTAssertGreaterThan(pair.tunB.collect(atLeast: Int(total / 1100), timeoutNanoseconds: 2_000_000_000).count, 0)
    }

    /// With fq_codel the bucket is charged when the tun-reader dequeues, and the datagram reaches the network log
    /// after the crypto pool and the udp-writer: a datagram charged before this step could land just after the
    /// observation and be counted in a later interval. With the fake clock frozen the reader stops once the tokens
    /// run out, so wait until nothing is in flight and the count has not moved for two polls (bounded: 500 ms).
    private func settled(_ pair: DevicePair, _ sent: UInt64) -> UInt64 {
        var last = sent
        var still = 0
        for _ in 0..<500 {
            usleep(1000)
            let now = sentOuterBytes(pair)
            let idle = pair.a.sendQueueing?.inFlight.load(ordering: .acquiring) ?? 0 == 0
            still = now == last && idle ? still + 1 : 0
            if still == 2 { return now }
            last = now
        }
        return last
    }

    func testFQCoDelPathIsShapedToTheRate() throws {
        // 1 ms steps (the bucket holds 3 ms), 200 ms of fake time, a backlog that lasts throughout.
        try run(aqm: true, packets: 500, steps: 200, stepNanoseconds: 1_000_000, slack: 2 * 1504)
    }

    func testFIFOPathIsShapedToTheRate() throws {
        // 10 ms steps, 1 s of fake time; slack one full batch of 1100-byte datagrams.
        try run(aqm: false, packets: 2400, steps: 100, stepNanoseconds: 10_000_000,
                slack: UInt64(PacketBatch.capacity) * 1100)
    }
}
