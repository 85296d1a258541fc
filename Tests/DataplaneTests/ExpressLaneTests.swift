// The send path's express lane end to end (Pipeline/SendQueue.swift): packets of sparse flows sealed and sent by
// the tun-reader itself, the rest in bulk batches through the crypto pool. Whichever lane a packet takes, every
// flow's packets arrive in order and none is lost, including a flow that switches lanes from round to round.
import Dataplane
import Glibc
import TestSupport
import XCTest

final class ExpressLaneTests: XCTestCase {
    /// Destination port and per-flow sequence number of a packet built by `packet(port:seq:size:)`.
    private static func flowAndSeq(_ p: [UInt8]) -> (UInt16, Int) {
        let port = UInt16(p[22]) << 8 | UInt16(p[23])
        let seq = Int(p[28]) << 24 | Int(p[29]) << 16 | Int(p[30]) << 8 | Int(p[31])
        return (port, seq)
    }

    private static func packet(port: UInt16, seq: Int, size: Int) -> [UInt8] {
        var payload = [UInt8](repeating: UInt8(truncatingIfNeeded: seq), count: max(size, 4))
        for i in 0..<4 { payload[i] = UInt8(truncatingIfNeeded: seq >> (24 - 8 * i)) }
        return PacketBuilder.ipv4UDP(src: DevicePair.innerA, dst: DevicePair.innerB, srcPort: 40000, dstPort: port,
                                     payload: payload)
    }

    func testEachFlowStaysInOrderAcrossBothLanes() throws {
        let pair = try DevicePair(threads: 2)
        pair.start()
        defer { pair.stop() }
        pair.tunA.inject([DevicePair.packet(0)])
        XCTAssertEqual(pair.tunB.collect(atLeast: 1), [DevicePair.packet(0)])
        let expressBefore = pair.a.counters[.txExpressPackets]
        let sentBefore = pair.a.counters[.txPackets]

        // Each round: a burst of three bulk flows (1200-byte packets, more than a batch: the express lane opens
        // while a batch is in flight) with 1 or 2 packets of each of 16 small flows mixed in. A small flow with
        // one packet in a round is sparse (unless its last bulk batch is still on its way); with two it goes in a
        // bulk batch. Rounds are spaced irregularly so the lanes interleave.
        var generator = SystemRandomNumberGenerator()
        var next: [UInt16: Int] = [:]
        var total = 0
        for _ in 0..<40 {
            var burst: [[UInt8]] = []
            for k in 0..<80 {
                for port: UInt16 in [1000, 1001, 1002] {
                    burst.append(Self.packet(port: port, seq: next[port, default: 0], size: 1200))
                    next[port, default: 0] += 1
                }
                if k % 5 == 0 {
                    let port = UInt16(2000 + k / 5)
                    for _ in 0..<Int.random(in: 1...2, using: &generator) {
                        burst.append(Self.packet(port: port, seq: next[port, default: 0], size: 40))
                        next[port, default: 0] += 1
                    }
                }
            }
            total += burst.count
            pair.tunA.inject(burst)
            usleep(UInt32.random(in: 0...1500, using: &generator))
        }
        let got = pair.tunB.collect(atLeast: total, timeoutNanoseconds: 30_000_000_000)
        XCTAssertEqual(got.count, total, "packets lost")
        var seen: [UInt16: Int] = [:]
        var outOfOrder = 0
        for p in got {
            let (port, seq) = Self.flowAndSeq(p)
            if seq != seen[port, default: 0] { outOfOrder += 1 }
            seen[port] = seq + 1
        }
        XCTAssertEqual(outOfOrder, 0, "a flow's packets were reordered (\(pair.a.counters[.txExpressPackets] - expressBefore) went express)")
        XCTAssertEqual(seen, next, "every flow complete")
        let express = pair.a.counters[.txExpressPackets] - expressBefore
        let sent = pair.a.counters[.txPackets] - sentBefore
        XCTAssertGreaterThan(express, 0, "no packet took the express lane")
        XCTAssertGreaterThan(sent - express, UInt64(total / 2), "the bulk went through the crypto pool")
    }
}
