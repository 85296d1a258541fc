// CoDel on the send side marks ECN-capable packets CE in the inner header, and the outer header must carry the
// same mark (RFC 6040 normal mode: the outer ECN field is copied from the inner one as it leaves). The mark is
// made at dispatch, after the inner TOS was first read at enqueue, so the copy must follow the mark.
import Dataplane
import TestSupport
import XCTest

final class SendCEMarkTests: XCTestCase {
    func testPacketsMarkedCEInTheQueueLeaveWithAnOuterCE() throws {
        // 4 Mbit/s: 400 packets of 1000 bytes queue for up to 0.8 s, far over CoDel's 5 ms target for its 100 ms
        // interval, so CoDel marks.
        let pair = try DevicePair(rate: Rate(bitsPerSecond: 4_000_000))
        pair.start()
        defer { pair.stop() }
        pair.tunA.inject([DevicePair.packet(0)])
        XCTAssertEqual(pair.tunB.collect(atLeast: 1), [DevicePair.packet(0)])
        pair.network.isRecording = true

        var sent = 0
        for burst in 0..<8 {
            pair.tunA.inject((0..<50).map { i in
                PacketBuilder.ipv4UDP(src: DevicePair.innerA, dst: DevicePair.innerB, srcPort: 40000, dstPort: 1000,
                                      payload: [UInt8](repeating: UInt8(burst), count: 972) + [UInt8(i)],
                                      tos: 0x02)
            })
            sent += 50
        }
        let got = pair.tunB.collect(atLeast: sent, timeoutNanoseconds: 20_000_000_000)
        XCTAssertEqual(got.count, sent, "ECN-capable packets are marked, not dropped")
        let innerCE = got.filter { $0[1] & 3 == 3 }.count
        XCTAssertTrue(waitUntil { pair.a.counters[.txCeMarks] > 0 && pair.b.counters[.rxPackets] >= UInt64(sent + 1) })
        let marks = pair.a.counters[.txCeMarks]
        XCTAssertGreaterThan(marks, 0, "CoDel marked nothing: the queue never stood")
        XCTAssertEqual(UInt64(innerCE), marks, "every mark reaches B in the inner header")

        let outer = pair.network.recorded.filter { $0.from == pair.endpointA && $0.bytes.first == 4 && $0.bytes.count > 32 }
        XCTAssertEqual(outer.filter { $0.tos & 3 == 3 }.count, innerCE, "each marked packet left with an outer CE")
        XCTAssertEqual(outer.filter { $0.tos & 3 == 2 }.count, sent - innerCE, "the others left as ECT(0)")
        XCTAssertEqual(pair.b.counters[.rxOuterCe], marks)
        XCTAssertEqual(pair.b.counters[.ecnAnomalyDangerous], 0)
        XCTAssertEqual(pair.b.counters[.ecnAnomalyPossiblyDangerous], 0)
    }
}
