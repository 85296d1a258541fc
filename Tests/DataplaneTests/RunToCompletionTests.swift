// Run to completion (Pipeline/SendQueue.swift scheduleInline, Send.swift, Receive.swift): a small batch that finds
// its direction's pipeline idle is sealed and sent by the tun-reader, or opened and written by the udp-reader,
// itself. One flow's packets, in bursts from one packet to several batches spaced irregularly so that both ways
// are taken and alternate, must arrive complete and in order, with fq_codel and with --no-aqm.
import Dataplane
import Glibc
import TestSupport
import XCTest

final class RunToCompletionTests: XCTestCase {
    private static func packet(seq: Int, size: Int) -> [UInt8] {
        var payload = [UInt8](repeating: UInt8(truncatingIfNeeded: seq), count: max(size, 4))
        for i in 0..<4 { payload[i] = UInt8(truncatingIfNeeded: seq >> (24 - 8 * i)) }
        // ECT(0): should fq_codel see a standing queue on a loaded machine, it marks instead of dropping.
        return PacketBuilder.ipv4UDP(src: DevicePair.innerA, dst: DevicePair.innerB, srcPort: 40000, dstPort: 1000,
                                     payload: payload, tos: 0x02)
    }

    private static func seq(_ p: [UInt8]) -> Int {
        Int(p[28]) << 24 | Int(p[29]) << 16 | Int(p[30]) << 8 | Int(p[31])
    }

    /// Bursts (packets of 1000 bytes): single packets and small groups go inline when the pipeline is idle;
    /// 100 or more (100 kB, over the inline byte limit) go through the workers.
    private static let bursts = [1, 1, 3, 150, 1, 2, 1, 400, 1, 10, 1, 64, 100, 1, 5, 1, 250, 2, 1, 1, 30, 128, 1]

    /// Starts the tunnel with one packet A→B and waits until both ends have counted it: A counts a packet just
    /// after handing it to the socket, B just after writing it to the TUN, so either may lag its arrival.
    private func started(aqm: Bool = true) throws -> DevicePair {
        let pair = try DevicePair(threads: 2, aqm: aqm)
        pair.start()
        pair.tunA.inject([DevicePair.packet(0)])
        XCTAssertEqual(pair.tunB.collect(atLeast: 1), [DevicePair.packet(0)])
        XCTAssertTrue(waitUntil { pair.a.counters[.txPackets] == 1 && pair.b.counters[.rxPackets] == 1 })
        return pair
    }

    private func run(aqm: Bool) throws {
        let pair = try started(aqm: aqm)
        defer { pair.stop() }
        let before = (txInline: pair.a.counters[.txInlinePackets], tx: pair.a.counters[.txPackets],
                      rxInline: pair.b.counters[.rxInlinePackets], rx: pair.b.counters[.rxPackets])

        var generator = SystemRandomNumberGenerator()
        var seq = 0
        for _ in 0..<6 {
            for size in Self.bursts {
                var burst: [[UInt8]] = []
                for _ in 0..<size {
                    burst.append(Self.packet(seq: seq, size: 1000))
                    seq += 1
                }
                pair.tunA.inject(burst)
                usleep(UInt32.random(in: 0...800, using: &generator))
            }
        }
        let got = pair.tunB.collect(atLeast: seq, timeoutNanoseconds: 30_000_000_000)
        XCTAssertEqual(got.count, seq, "packets lost")
        var expected = 0
        var outOfOrder = 0
        for p in got {
            if Self.seq(p) != expected { outOfOrder += 1 }
            expected = Self.seq(p) + 1
        }
        XCTAssertEqual(outOfOrder, 0, "the flow's packets were reordered")

        XCTAssertTrue(waitUntil {
            pair.a.counters[.txPackets] - before.tx == UInt64(seq) && pair.b.counters[.rxPackets] - before.rx == UInt64(seq)
        }, "packets not counted")
        let txInline = pair.a.counters[.txInlinePackets] - before.txInline
        let tx = pair.a.counters[.txPackets] - before.tx
        let rxInline = pair.b.counters[.rxInlinePackets] - before.rxInline
        let rx = pair.b.counters[.rxPackets] - before.rx
        XCTAssertEqual(rx, UInt64(seq))
        XCTAssertGreaterThan(txInline, 0, "no batch was sealed and sent by the tun-reader")
        XCTAssertGreaterThan(tx - txInline, UInt64(seq / 2), "the large bursts went through the workers")
        XCTAssertGreaterThan(rxInline, 0, "no batch was opened and written by the udp-reader")
        XCTAssertGreaterThan(rx - rxInline, UInt64(seq / 2), "the large bursts went through the workers")
    }

    func testOneFlowStaysInOrderWithFQCoDel() throws { try run(aqm: true) }

    func testOneFlowStaysInOrderWithoutAQM() throws { try run(aqm: false) }

    /// Light traffic (one packet at a time, each answered before the next) never wakes a worker: every packet
    /// is sealed by the tun-reader and opened by the udp-reader.
    func testPingPongRunsToCompletion() throws {
        let pair = try started()
        defer { pair.stop() }
        let before = (pair.a.counters[.txInlinePackets], pair.b.counters[.rxInlinePackets],
                      pair.b.counters[.txInlinePackets], pair.a.counters[.rxInlinePackets])
        for n in 1...20 {
            pair.tunA.inject([DevicePair.packet(n)])
            XCTAssertEqual(pair.tunB.collect(atLeast: 1), [DevicePair.packet(n)])
            pair.tunB.inject([DevicePair.packet(n, fromA: false)])
            XCTAssertEqual(pair.tunA.collect(atLeast: 1), [DevicePair.packet(n, fromA: false)])
        }
        // The inline counters move before a packet is sent or delivered; rx_packets after it reaches the TUN.
        XCTAssertTrue(waitUntil { pair.a.counters[.rxPackets] == 20 })
        XCTAssertEqual(pair.a.counters[.txInlinePackets] - before.0, 20)
        XCTAssertEqual(pair.b.counters[.rxInlinePackets] - before.1, 20)
        XCTAssertEqual(pair.b.counters[.txInlinePackets] - before.2, 20)
        XCTAssertEqual(pair.a.counters[.rxInlinePackets] - before.3, 20)
    }
}
