// The send path's fq_codel through a whole device pair: a sparse flow overtakes a bulk backlog, every packet of
// every flow still arrives once and in flow order, and --no-aqm (FIFO) keeps arrival order.
import Crypto
import Dataplane
import TestSupport
import XCTest

final class SendQueueingTests: XCTestCase {
    private func bulk(_ n: Int, port: UInt16) -> [UInt8] {
        var payload = [UInt8](repeating: 0xab, count: 1000)
        payload[0] = UInt8(truncatingIfNeeded: n >> 8); payload[1] = UInt8(truncatingIfNeeded: n)
        return PacketBuilder.ipv4UDP(src: DevicePair.innerA, dst: DevicePair.innerB, srcPort: port, dstPort: 5001,
                                     payload: payload)
    }

    private func sparse() -> [UInt8] {
        PacketBuilder.ipv4UDP(src: DevicePair.innerA, dst: DevicePair.innerB, srcPort: 7777, dstPort: 53,
                              payload: Array("sparse".utf8))
    }

    /// Returns the received packets after a 4000-packet bulk burst of two flows followed by one sparse packet.
    private func runBurst(aqm: Bool) throws -> (got: [[UInt8]], sent: [[UInt8]]) {
        let pair = try DevicePair(threads: 1, aqm: aqm)
        pair.start()
        defer { pair.stop() }
        pair.tunA.inject([DevicePair.packet(0)])
        XCTAssertEqual(pair.tunB.collect(atLeast: 1).count, 1)
        var burst: [[UInt8]] = []
        for n in 0..<2000 { burst.append(bulk(n, port: 1000)); burst.append(bulk(n, port: 2000)) }
        burst.append(sparse())
        pair.tunA.inject(burst)
        let got = pair.tunB.collect(atLeast: burst.count, timeoutNanoseconds: 20_000_000_000)
        return (got, burst)
    }

    func testSparseFlowOvertakesBulkBacklogAndNothingIsLost() throws {
        let (got, sent) = try runBurst(aqm: true)
        XCTAssertEqual(got.count, sent.count, "every packet arrives (CoDel needs 5 ms of standing queue to drop)")
        XCTAssertEqual(Set(got.map { $0 }).count, got.count, "no duplicates")
        // Per flow, order is kept.
        for port: UInt16 in [1000, 2000] {
            let flow = got.filter { $0.count > 22 && UInt16($0[20]) << 8 | UInt16($0[21]) == port }
            XCTAssertTrue(flow == sent.filter { $0.count > 22 && UInt16($0[20]) << 8 | UInt16($0[21]) == port },
                          "flow \(port) reordered or altered")
        }
        let position = try XCTUnwrap(got.firstIndex(of: sparse()))
        XCTAssertLessThan(position, sent.count - 1000,
                          "the sparse packet should be served ahead of the bulk backlog, not behind all of it")
    }

    func testFIFOKeepsArrivalOrder() throws {
        let (got, sent) = try runBurst(aqm: false)
        XCTAssertTrue(got == sent, "--no-aqm is a plain FIFO")
    }
}
