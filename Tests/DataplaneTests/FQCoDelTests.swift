// FQ-CoDel per peer over packet handles: scheduling, limits, state separation, idle cost, conservation.
import CTestSupport
import XCTest
@testable import Dataplane

final class FQCoDelTests: XCTestCase {
    static let ms: UInt64 = 1_000_000
    static let t0: UInt64 = 1_000_000 * ms

    /// A hash that lands in flow `i` of 1024: reciprocal_scale(i << 22, 1024) = i.
    static func hash(_ i: Int) -> UInt32 { UInt32(i) << 22 }

    static func make(_ parameters: FQCoDelParameters = FQCoDelParameters(), capacity: Int = 4096)
        -> (FQCoDelShared, PeerQueue) {
        let shared = FQCoDelShared(handleCapacity: capacity, parameters: parameters)
        return (shared, shared.makePeerQueue())
    }

    func testDefaultsAndFlowIndex() {
        let p = FQCoDelParameters()
        XCTAssertEqual(p.flowsPerPeer, 1024)
        XCTAssertEqual(p.quantum, 1420)
        XCTAssertEqual(p.codel.mtu, 1420)
        XCTAssertEqual(p.limitPackets, 1024)
        XCTAssertEqual(p.dropBatchSize, 64)
        XCTAssertEqual(p.codel.target, 5 * Self.ms)
        XCTAssertEqual(p.codel.interval, 100 * Self.ms)
        XCTAssertTrue(p.codel.ecn)
        XCTAssertFalse(FQCoDelParameters(ecn: false).codel.ecn)
        XCTAssertLessThanOrEqual(MemoryLayout<FQFlow>.stride, 64, "Linux keeps a flow within 64 bytes")
        XCTAssertEqual(MemoryLayout<FQHandleSlot>.stride, 16)

        let (_, q) = Self.make()
        // (hash, flow) for 1024 flows: (hash · 1024) >> 32
        let cases: [(UInt32, Int)] = [(0, 0), (1 << 22 - 1, 0), (1 << 22, 1), (Self.hash(517), 517),
                                      (.max, 1023), (0x8000_0000, 512)]
        for (h, f) in cases { XCTAssertEqual(q.flowIndex(hash: h), f, "hash \(h)") }
        let (_, q7) = Self.make(FQCoDelParameters(flowsPerPeer: 7))
        XCTAssertEqual(q7.flowIndex(hash: .max), 6)
        XCTAssertEqual(q7.flowIndex(hash: 0x8000_0000), 3)
    }

    /// A sparse flow's packet goes out before the backlog of two bulk flows.
    func testSparseFlowServedAheadOfBulk() {
        let (_, q) = Self.make()
        var dropped: [UInt32] = []
        var h: UInt32 = 0
        for _ in 0..<50 {
            q.enqueue(handle: h, length: 1420, hash: Self.hash(1), ecnCapable: false, now: Self.t0, dropped: &dropped)
            q.enqueue(handle: h + 1, length: 1420, hash: Self.hash(2), ecnCapable: false, now: Self.t0,
                      dropped: &dropped)
            h += 2
        }
        // Let the bulk flows use up their first quantum and move to the old list.
        for _ in 0..<4 { XCTAssertNotNil(q.dequeue(now: Self.t0, dropped: &dropped)) }
        XCTAssertEqual(q.oldFlows, 2)
        XCTAssertEqual(q.newFlows, 0)

        let sparse: UInt32 = 1000
        q.enqueue(handle: sparse, length: 100, hash: Self.hash(3), ecnCapable: false, now: Self.t0, dropped: &dropped)
        XCTAssertEqual(q.newFlows, 1)
        XCTAssertEqual(q.dequeue(now: Self.t0, dropped: &dropped)?.handle, sparse)
        XCTAssertEqual(q.packets(flow: 1) + q.packets(flow: 2), 96, "bulk backlog still waiting")

        // Arriving together with the bulk flows, as one more new flow, it waits for at most one quantum each.
        let (_, q2) = Self.make()
        for i in 0..<100 {
            q2.enqueue(handle: UInt32(i), length: 1420, hash: Self.hash(1 + i % 2), ecnCapable: false, now: Self.t0,
                       dropped: &dropped)
        }
        q2.enqueue(handle: sparse, length: 100, hash: Self.hash(3), ecnCapable: false, now: Self.t0, dropped: &dropped)
        var order: [UInt32] = []
        for _ in 0..<3 { order.append(q2.dequeue(now: Self.t0, dropped: &dropped)!.handle) }
        XCTAssertEqual(order, [0, 1, sparse])
        XCTAssertTrue(dropped.isEmpty)
    }

    /// `dequeueSparse` serves the first new flow holding exactly one packet, ahead of new flows that arrived with
    /// several, and nothing else; the normal order carries on behind it.
    func testDequeueSparse() {
        var dropped: [UInt32] = []
        // (packets of bulk flow 1 queued first, dequeues before the sparse packets, packets of flow 3,
        //  what dequeueSparse returns, what the next dequeue returns)
        let cases: [(bulk: Int, dequeues: Int, sparse: Int, express: UInt32?, next: UInt32?)] = [
            (0, 0, 0, nil, nil),   // empty
            (0, 0, 1, 1000, nil),  // one lone packet of a new flow
            (0, 0, 2, nil, 1000),  // two packets of one flow: not sparse
            (1, 0, 0, 0, nil),     // a one-packet "bulk" flow is as sparse as any
            (5, 0, 0, nil, 0),     // a new flow arriving with several packets
            (5, 0, 1, 1000, 0),    // a lone packet behind that burst, both new: it goes first
            (5, 1, 0, nil, 1),     // the burst's flow after its quantum: on its way to the old list
            (5, 1, 1, 1000, 1),    // a lone packet behind it
            (5, 5, 0, nil, nil),   // drained
        ]
        for (i, c) in cases.enumerated() {
            let (_, q) = Self.make()
            for h in 0..<c.bulk {
                q.enqueue(handle: UInt32(h), length: 1420, hash: Self.hash(1), ecnCapable: false, now: Self.t0,
                          dropped: &dropped)
            }
            for _ in 0..<c.dequeues { XCTAssertNotNil(q.dequeue(now: Self.t0, dropped: &dropped), "case \(i)") }
            for k in 0..<c.sparse {
                q.enqueue(handle: 1000 + UInt32(k), length: 90, hash: Self.hash(3), ecnCapable: false, now: Self.t0,
                          dropped: &dropped)
            }
            let before = q.queuedPackets
            let express = q.dequeueSparse(now: Self.t0, sentThrough: 0, dropped: &dropped)
            XCTAssertEqual(express?.handle, c.express, "case \(i)")
            XCTAssertEqual(q.queuedPackets, before - (express == nil ? 0 : 1), "case \(i)")
            XCTAssertNil(q.dequeueSparse(now: Self.t0, sentThrough: 0, dropped: &dropped), "case \(i): nothing sparse left")
            XCTAssertEqual(q.dequeue(now: Self.t0, dropped: &dropped)?.handle, c.next, "case \(i)")
        }
        // The new list is searched only so far: a lone packet behind more bursts than that waits its turn.
        let (_, q) = Self.make()
        for f in 0..<PeerQueue.sparseLookahead {
            for k in 0..<2 {
                q.enqueue(handle: UInt32(f * 2 + k), length: 1420, hash: Self.hash(10 + f), ecnCapable: false,
                          now: Self.t0, dropped: &dropped)
            }
        }
        q.enqueue(handle: 1000, length: 90, hash: Self.hash(3), ecnCapable: false, now: Self.t0, dropped: &dropped)
        XCTAssertNil(q.dequeueSparse(now: Self.t0, sentThrough: 0, dropped: &dropped))
        XCTAssertTrue(dropped.isEmpty)
    }

    /// A flow `dequeue` served under a dispatch stamp is not sparse until that stamp has been sent: its next
    /// packet must not overtake the one still on its way.
    func testDequeueSparseWaitsForTheFlowsDispatch() {
        var dropped: [UInt32] = []
        // (stamp the first packet is dequeued under, sentThrough when the next lone packet is looked at, express?)
        let cases: [(stamp: UInt32, sent: UInt32, express: Bool)] = [
            (0, 0, true),            // never dispatched by dequeue (stamp 0): free
            (7, 6, false),           // its batch 7 not yet sent
            (7, 7, true),            // sent
            (7, 9, true),
            (2, .max, false),        // across the wrap: stamp 2 comes after .max
            (.max, 1, true),         // .max is before 1
        ]
        for (i, c) in cases.enumerated() {
            let (_, q) = Self.make()
            q.dispatchStamp = c.stamp
            q.enqueue(handle: 1, length: 90, hash: Self.hash(3), ecnCapable: false, now: Self.t0, dropped: &dropped)
            XCTAssertEqual(q.dequeue(now: Self.t0, dropped: &dropped)?.handle, 1, "case \(i)")
            XCTAssertNil(q.dequeue(now: Self.t0, dropped: &dropped), "case \(i): emptied and unlisted")
            q.enqueue(handle: 2, length: 90, hash: Self.hash(3), ecnCapable: false, now: Self.t0, dropped: &dropped)
            XCTAssertEqual(q.dequeueSparse(now: Self.t0, sentThrough: c.sent, dropped: &dropped)?.handle,
                           c.express ? 2 : nil, "case \(i)")
            // Served by dequeueSparse or left for dequeue, the packet is not lost.
            if !c.express { XCTAssertEqual(q.dequeue(now: Self.t0, dropped: &dropped)?.handle, 2, "case \(i)") }
            XCTAssertEqual(q.queuedPackets, 0, "case \(i)")
        }
    }

    /// Trains (a TUN super-packet's segments, enqueued with continuesTrain): served whole, whatever the deficit,
    /// and charged in full, as Linux serves a TSO skb. Quantum 1500, packets of 1000 bytes; each case enqueues
    /// flow 1's packets and then flow 2's, and lists the flows in the order dequeue serves them.
    func testTrainsAreServedWhole() {
        struct Case { let name: String; let trains1: [Int]; let trains2: [Int]; let expect: [Int] }
        // trainsN: the lengths of flow N's trains, in order (a 1 is a packet on its own).
        let cases: [Case] = [
            // Without trains DRR gives each flow 1500 bytes a round: two packets, then one and one.
            Case(name: "no trains", trains1: [1, 1, 1, 1], trains2: [1, 1, 1, 1], expect: [1, 1, 2, 2, 1, 2, 1, 2]),
            Case(name: "one train each", trains1: [4], trains2: [4], expect: [1, 1, 1, 1, 2, 2, 2, 2]),
            // Each 2000-byte train overdraws the flow; its next train waits for the next round.
            Case(name: "two trains each", trains1: [2, 2], trains2: [2, 2], expect: [1, 1, 2, 2, 1, 1, 2, 2]),
            // A 10 000-byte train: flow 2's single packets then go first until flow 1's deficit is back above 0
            // (6 quanta of 1500 from −8500), by which time flow 2 has sent its 5 packets.
            Case(name: "long train against singles", trains1: [10, 1], trains2: [1, 1, 1, 1, 1],
                 expect: Array(repeating: 1, count: 10) + [2, 2, 2, 2, 2, 1]),
            // A train behind single packets that used up the quantum waits for the flow's next turn.
            Case(name: "singles then a train", trains1: [1, 1, 3], trains2: [1, 1],
                 expect: [1, 1, 2, 2, 1, 1, 1]),
            // With quantum left, a train starts at once and runs past it.
            Case(name: "single then a train", trains1: [1, 3], trains2: [1, 1], expect: [1, 1, 1, 1, 2, 2]),
        ]
        for c in cases {
            let (_, q) = Self.make(FQCoDelParameters(mtu: 1500))
            var dropped: [UInt32] = []
            var h: UInt32 = 0
            var flowOf: [UInt32: Int] = [:]
            for (flow, trains) in [(1, c.trains1), (2, c.trains2)] {
                for train in trains {
                    for i in 0..<train {
                        q.enqueue(handle: h, length: 1000, hash: Self.hash(flow), ecnCapable: false,
                                  continuesTrain: i > 0, now: Self.t0, dropped: &dropped)
                        flowOf[h] = flow
                        h += 1
                    }
                }
            }
            var order: [Int] = []
            while let d = q.dequeue(now: Self.t0, dropped: &dropped) { order.append(flowOf[d.handle]!) }
            XCTAssertEqual(order, c.expect, c.name)
            XCTAssertTrue(dropped.isEmpty, c.name)
            XCTAssertEqual(q.queuedPackets, 0, c.name)
        }
    }

    /// Two backlogged flows get the same bytes within 10 %: with different packet sizes, and sending in trains
    /// of different lengths (or none).
    func testBulkFlowsShareBytes() {
        let cases: [(name: String, train: [Int], size: [UInt32])] = [
            ("singles of big packets against singles of small", [1, 1], [1420, 300]),
            ("45-packet trains against singles", [45, 1], [1420, 1420]),
            ("45-packet trains against 3-packet trains", [45, 3], [1420, 1420]),
            ("trains of big packets against singles of small", [40, 1], [1420, 300]),
        ]
        for c in cases {
            let (_, q) = Self.make()
            var dropped: [UInt32] = []
            var free = Array((0..<UInt32(800)).reversed())
            var flowOf = [Int](repeating: -1, count: 800)
            var queued = [0, 0]
            var bytes: [UInt64] = [0, 0]
            var now = Self.t0
            for _ in 0..<40_000 {
                for f in 0..<2 where queued[f] < 100 {
                    for i in 0..<c.train[f] {
                        let h = free.removeLast()
                        flowOf[Int(h)] = f
                        q.enqueue(handle: h, length: c.size[f], hash: Self.hash(10 + f), ecnCapable: false,
                                  continuesTrain: i > 0, now: now, dropped: &dropped)
                        queued[f] += 1
                    }
                }
                let d = q.dequeue(now: now, dropped: &dropped)!
                let f = flowOf[Int(d.handle)]
                bytes[f] += UInt64(c.size[f])
                queued[f] -= 1
                free.append(d.handle)
                now += 1000   // 1 µs: sojourn stays far below target
            }
            XCTAssertTrue(dropped.isEmpty, c.name)
            XCTAssertEqual(Double(bytes[0]) / Double(bytes[1]), 1, accuracy: 0.1, "\(c.name): bytes \(bytes)")
        }
    }

    enum Op {
        case enqueue(handle: UInt32, flow: Int, length: UInt32)
        case dequeue(expect: UInt32?)
    }

    /// New/old list transitions, step by step: (operation, new list length, old list length after it).
    func testNewOldListTransitions() {
        let steps: [(Op, Int, Int)] = [
            (.enqueue(handle: 0, flow: 5, length: 1000), 1, 0),
            (.enqueue(handle: 1, flow: 5, length: 1000), 1, 0),
            (.enqueue(handle: 2, flow: 5, length: 1000), 1, 0),
            (.dequeue(expect: 0), 1, 0),                // deficit 1420 → 420
            (.dequeue(expect: 1), 1, 0),                // 420 → −580, still at the head of new
            (.dequeue(expect: 2), 0, 1),                // spent: +1420 and to old; served from old
            (.dequeue(expect: nil), 0, 0),              // empty old flow leaves the lists
            (.enqueue(handle: 3, flow: 5, length: 1000), 1, 0),   // new again, full quantum
            (.enqueue(handle: 4, flow: 7, length: 1000), 2, 0),
            (.enqueue(handle: 5, flow: 7, length: 1000), 2, 0),
            (.enqueue(handle: 6, flow: 7, length: 1000), 2, 0),
            (.dequeue(expect: 3), 2, 0),
            // 5 is empty while new and old is empty: it leaves the lists; 7 is served.
            (.dequeue(expect: 4), 1, 0),
            (.dequeue(expect: 5), 1, 0),                // 7: 1420 − 2000 < 0, still at the head of new
            (.dequeue(expect: 6), 0, 1),                // spent: to old (deficit 840), served → −160
            (.enqueue(handle: 7, flow: 7, length: 1000), 0, 1),   // listed on old: no new-flow priority
            (.dequeue(expect: 7), 0, 1),                // +1420 → 1260, served → 260
            (.enqueue(handle: 8, flow: 7, length: 1000), 0, 1),
            (.enqueue(handle: 9, flow: 9, length: 100), 1, 1),    // a sparse flow
            (.dequeue(expect: 9), 1, 1),                // new before old
            // 9 empties while new and old is non-empty: it goes to the tail of old; 7 (deficit 260) is served.
            (.dequeue(expect: 8), 0, 2),
            (.dequeue(expect: nil), 0, 0),              // 7 tops up and moves behind 9; both found empty, both leave
        ]
        let (_, q) = Self.make()
        var dropped: [UInt32] = []
        for (n, (op, newLen, oldLen)) in steps.enumerated() {
            switch op {
            case let .enqueue(handle, flow, length):
                q.enqueue(handle: handle, length: length, hash: Self.hash(flow), ecnCapable: false, now: Self.t0,
                          dropped: &dropped)
            case let .dequeue(expect):
                XCTAssertEqual(q.dequeue(now: Self.t0, dropped: &dropped)?.handle, expect, "step \(n)")
            }
            XCTAssertEqual(q.newFlows, newLen, "new list after step \(n)")
            XCTAssertEqual(q.oldFlows, oldLen, "old list after step \(n)")
        }
        XCTAssertEqual(q.stats.newFlowsAdded, 4, "flows 5, 7, 5 again and 9; 7's later packets were not new")
        XCTAssertTrue(dropped.isEmpty)
        XCTAssertEqual(q.queuedPackets, 0)
        XCTAssertEqual(q.queuedBytes, 0)
    }

    /// Over the limit, the fattest flow by bytes loses packets from its head: up to the batch size or half its
    /// bytes, at least one; its CoDel count grows by as many.
    func testLimitDropsFromFattestFlow() {
        struct Case {
            var limit: Int
            var memory: Int
            var batch: Int
            var fat: Int            // packets of 1000 bytes on flow 1
            var thin: Int           // packets of 1000 bytes on flow 2
            var arrivalFlow: Int    // where the packet over the limit goes
            var expectDropped: Int
            var ownFlow: Bool
            var overMemory: Bool
        }
        let cases = [
            Case(limit: 100, memory: 1 << 30, batch: 64, fat: 80, thin: 20, arrivalFlow: 2,
                 expectDropped: 40, ownFlow: false, overMemory: false),     // half of 80 000 bytes
            Case(limit: 100, memory: 1 << 30, batch: 16, fat: 80, thin: 20, arrivalFlow: 2,
                 expectDropped: 16, ownFlow: false, overMemory: false),     // the batch size
            Case(limit: 100, memory: 1 << 30, batch: 64, fat: 80, thin: 20, arrivalFlow: 1,
                 expectDropped: 41, ownFlow: true, overMemory: false),      // 81 000 bytes: 41 to reach half
            Case(limit: 100, memory: 1 << 30, batch: 64, fat: 1, thin: 99, arrivalFlow: 1,
                 expectDropped: 50, ownFlow: false, overMemory: false),
            Case(limit: 10_000, memory: 50_000, batch: 64, fat: 30, thin: 20, arrivalFlow: 2,
                 expectDropped: 15, ownFlow: false, overMemory: true),      // byte limit
            Case(limit: 2, memory: 1 << 30, batch: 64, fat: 1, thin: 1, arrivalFlow: 3,
                 expectDropped: 1, ownFlow: false, overMemory: false),      // ties: the first fattest; at least one
        ]
        for (n, c) in cases.enumerated() {
            let (_, q) = Self.make(FQCoDelParameters(limitPackets: c.limit, memoryLimitBytes: c.memory,
                                                     dropBatchSize: c.batch))
            var dropped: [UInt32] = []
            var h: UInt32 = 0
            var handlesOf: [Int: [UInt32]] = [:]
            for (flow, k) in [(1, c.fat), (2, c.thin)] {
                for _ in 0..<k {
                    q.enqueue(handle: h, length: 1000, hash: Self.hash(flow), ecnCapable: true, now: Self.t0,
                              dropped: &dropped)
                    handlesOf[flow, default: []].append(h)
                    h += 1
                }
            }
            XCTAssertTrue(dropped.isEmpty, "case \(n): under the limit")
            let before = q.codelState(flow: 1)!.count
            let r = q.enqueue(handle: h, length: 1000, hash: Self.hash(c.arrivalFlow), ecnCapable: true,
                              now: Self.t0, dropped: &dropped)
            handlesOf[c.arrivalFlow, default: []].append(h)
            let victim = c.fat >= c.thin || c.arrivalFlow == 1 && c.fat + 1 >= c.thin ? 1 : 2
            XCTAssertEqual(r.dropped, c.expectDropped, "case \(n)")
            XCTAssertEqual(r.ownFlowDropped, c.ownFlow, "case \(n)")
            XCTAssertEqual(dropped, Array(handlesOf[victim]!.prefix(c.expectDropped)), "case \(n): head drops")
            XCTAssertEqual(q.stats.limitDrops, UInt64(c.expectDropped))
            XCTAssertEqual(q.stats.overMemoryDrops, c.overMemory ? UInt64(c.expectDropped) : 0)
            if victim == 1 {
                XCTAssertEqual(q.codelState(flow: 1)!.count, before + UInt32(c.expectDropped), "case \(n)")
            }
            XCTAssertEqual(q.queuedPackets, c.fat + c.thin + 1 - c.expectDropped)
            XCTAssertEqual(q.queuedBytes, UInt64(q.queuedPackets) * 1000)
        }
    }

    /// Per-flow CoDel inside the scheduler: a standing bulk flow is marked (ECT) or dropped (Not-ECT) at the
    /// head, while a sparse flow's packets pass untouched and quickly.
    func testCoDelPerFlow() {
        for ecn in [true, false] {
            let (_, q) = Self.make()
            var dropped: [UInt32] = []
            var free = Array((0..<UInt32(2000)).reversed())
            var sparse = [Bool](repeating: false, count: 2000)
            var now = Self.t0
            var marks = 0
            var sparseSent = 0
            // A standing queue of 200 bulk packets (20 ms at one packet per 100 µs), then equal rates in and out.
            for _ in 0..<200 {
                q.enqueue(handle: free.removeLast(), length: 1420, hash: Self.hash(1), ecnCapable: ecn, now: now,
                          dropped: &dropped)
            }
            for step in 0..<10_000 {   // 1 s
                q.enqueue(handle: free.removeLast(), length: 1420, hash: Self.hash(1), ecnCapable: ecn, now: now,
                          dropped: &dropped)
                if step % 100 == 50 {   // once the bulk flow has settled on the old list
                    let h = free.removeLast()
                    sparse[Int(h)] = true
                    q.enqueue(handle: h, length: 100, hash: Self.hash(2), ecnCapable: false, now: now,
                              dropped: &dropped)
                }
                // One bulk packet out per step, plus the sparse one when there is one.
                while let d = q.dequeue(now: now, dropped: &dropped) {
                    free.append(d.handle)
                    if d.markCE { marks += 1 }
                    guard sparse[Int(d.handle)] else { break }
                    XCTAssertEqual(d.sojourn, 0, "the sparse packet goes out ahead of the 200-packet backlog")
                    XCTAssertFalse(d.markCE)
                    sparse[Int(d.handle)] = false
                    sparseSent += 1
                }
                XCTAssertFalse(dropped.contains { sparse[Int($0)] }, "the sparse flow is never dropped")
                free.append(contentsOf: dropped)
                dropped.removeAll(keepingCapacity: true)
                now += 100_000
            }
            XCTAssertEqual(sparseSent, 100)
            if ecn {
                XCTAssertGreaterThan(marks, 0)
                XCTAssertEqual(q.stats.ceMarks, UInt64(marks))
                XCTAssertEqual(q.stats.codelDrops, 0, "ECT packets are marked, not dropped")
            } else {
                XCTAssertEqual(marks, 0)
                XCTAssertGreaterThan(q.stats.codelDrops, 0)
            }
            XCTAssertEqual(q.codelState(flow: 2)?.count, 0, "the sparse flow never entered the dropping state")
            XCTAssertEqual(q.stats.limitDrops, 0)
        }
    }

    /// Two peers on one shared table: a flood at A's limit neither touches B's packets nor delays them.
    func testPeersAreSeparate() {
        let shared = FQCoDelShared(handleCapacity: 4096, parameters: FQCoDelParameters(limitPackets: 500))
        let a = shared.makePeerQueue()
        let b = shared.makePeerQueue()
        var dropped: [UInt32] = []
        var bDropped: [UInt32] = []
        b.enqueue(handle: 4000, length: 200, hash: Self.hash(1), ecnCapable: false, now: Self.t0, dropped: &bDropped)
        for h in 0..<UInt32(2000) {
            a.enqueue(handle: h, length: 1420, hash: Self.hash(1), ecnCapable: false, now: Self.t0, dropped: &dropped)
        }
        let queuedA = a.queuedPackets
        XCTAssertLessThanOrEqual(a.queuedPackets, 500)
        XCTAssertEqual(a.queuedPackets + dropped.count, 2000)
        XCTAssertTrue(dropped.allSatisfy { $0 < 2000 }, "only A's handles")
        XCTAssertEqual(b.queuedPackets, 1)
        XCTAssertEqual(b.stats, {
            var s = FQCoDelStats()
            s.newFlowsAdded = 1
            s.tableAllocations = 1
            return s
        }())
        let d = b.dequeue(now: Self.t0 + 1000, dropped: &bDropped)
        XCTAssertEqual(d?.handle, 4000)
        XCTAssertEqual(d?.sojourn, 1000)
        XCTAssertNil(b.dequeue(now: Self.t0 + 1000, dropped: &bDropped))
        XCTAssertTrue(bDropped.isEmpty)
        XCTAssertEqual(a.queuedPackets, queuedA, "B's dequeue leaves A alone")
        XCTAssertEqual(a.dequeue(now: Self.t0, dropped: &dropped)?.handle, UInt32(2000 - queuedA),
                       "A's oldest survivor: limit drops come from the head")
    }

    /// 10 000 idle peers cost under 1 KiB each: no flow table until the first packet. An emptied peer gives its
    /// table back after idling.
    func testIdlePeersAreCheap() {
        let shared = FQCoDelShared(handleCapacity: 1024)
        let peers = (0..<10_000).map { _ in shared.makePeerQueue() }
        var heap = 0
        for p in peers {
            XCTAssertFalse(p.hasFlowTable)
            heap += Int(vf_test_heap_block_size(Unmanaged.passUnretained(p).toOpaque()))
        }
        let perPeer = heap / peers.count
        XCTAssertLessThanOrEqual(perPeer, 1024, "idle peer: \(perPeer) bytes")
        XCTAssertGreaterThanOrEqual(perPeer, MemoryLayout<FQCoDelStats>.size + MemoryLayout<CoDelParameters>.size)

        let q = peers[1234]
        var dropped: [UInt32] = []
        q.enqueue(handle: 7, length: 500, hash: 99, ecnCapable: false, now: Self.t0, dropped: &dropped)
        XCTAssertTrue(q.hasFlowTable)
        XCTAssertEqual(q.flowTableBytes, 1024 * (MemoryLayout<FQFlow>.stride + 4))
        XCTAssertEqual(peers.filter(\.hasFlowTable).count, 1)
        XCTAssertFalse(q.releaseIfIdle(now: Self.t0 + 10 * Self.ms), "packets queued")
        XCTAssertEqual(q.dequeue(now: Self.t0 + 1 * Self.ms, dropped: &dropped)?.handle, 7)
        let idle = shared.parameters.idleReleaseAfter
        XCTAssertEqual(idle, 32 * 100 * Self.ms)
        XCTAssertFalse(q.releaseIfIdle(now: Self.t0 + 1 * Self.ms + idle - 1), "not idle long enough")
        XCTAssertTrue(q.releaseIfIdle(now: Self.t0 + 1 * Self.ms + idle))
        XCTAssertFalse(q.hasFlowTable)
        XCTAssertFalse(q.releaseIfIdle(now: Self.t0 + 2 * idle), "nothing left to release")
        XCTAssertNil(q.dequeue(now: Self.t0 + 2 * idle, dropped: &dropped))
        q.enqueue(handle: 8, length: 500, hash: 99, ecnCapable: false, now: Self.t0 + 2 * idle, dropped: &dropped)
        XCTAssertEqual(q.stats.tableAllocations, 2)
        XCTAssertEqual(q.dequeue(now: Self.t0 + 2 * idle, dropped: &dropped)?.handle, 8)
        XCTAssertTrue(dropped.isEmpty)
    }

    /// A long random run: every handle enqueued comes back exactly once (sent, CoDel-dropped, limit-dropped or
    /// removed at the end), and each flow gives its packets up in the order they came.
    func testConservationOverRandomRun() {
        let capacity = 3000
        for seed: UInt64 in [1, 2, 3] {
            var rng = SeededRandom(seed: seed)
            let params = FQCoDelParameters(flowsPerPeer: 64, limitPackets: 600, memoryLimitBytes: 400_000,
                                           dropBatchSize: 16)
            let shared = FQCoDelShared(handleCapacity: capacity, parameters: params)
            let peers = [shared.makePeerQueue(), shared.makePeerQueue()]
            var free = Array((0..<UInt32(capacity)).reversed())
            var owner = [Int](repeating: -1, count: capacity)       // peer holding the handle, −1 when free
            var flowOf = [Int](repeating: 0, count: capacity)
            var seqOf = [Int](repeating: 0, count: capacity)
            var lengthOf = [UInt32](repeating: 0, count: capacity)
            var nextSeq = 0
            var lastOut = [[Int]](repeating: [Int](repeating: -1, count: 64), count: 2)
            var bytes: [UInt64] = [0, 0]
            var packets = [0, 0]
            var enqueued = 0
            var sent = 0
            var droppedTotal = 0
            var marks = 0
            var dropped: [UInt32] = []
            dropped.reserveCapacity(1024)
            var now = Self.t0

            func takeBack(_ h: UInt32, from p: Int) {
                XCTAssertEqual(owner[Int(h)], p, "handle \(h) returned by the peer that holds it, once")
                let f = flowOf[Int(h)]
                XCTAssertGreaterThan(seqOf[Int(h)], lastOut[p][f], "per-flow FIFO order")
                lastOut[p][f] = seqOf[Int(h)]
                owner[Int(h)] = -1
                packets[p] -= 1
                bytes[p] -= UInt64(lengthOf[Int(h)])
                free.append(h)
            }

            for _ in 0..<200_000 {
                let p = Int(rng.next() % 2)
                let q = peers[p]
                let roll = rng.next() % 100
                if roll < 55, let h = free.popLast() {
                    // Skewed flows: a few heavy hitters and a long tail.
                    let hash = rng.next() % 4 == 0 ? UInt32(truncatingIfNeeded: rng.next())
                                                   : UInt32(rng.next() % 3) << 27
                    let length = UInt32(64 + rng.next() % 1357)
                    owner[Int(h)] = p
                    flowOf[Int(h)] = q.flowIndex(hash: hash)
                    seqOf[Int(h)] = nextSeq; nextSeq += 1
                    lengthOf[Int(h)] = length
                    packets[p] += 1
                    bytes[p] += UInt64(length)
                    enqueued += 1
                    // Train bits at random, also where the packet before it was of another flow.
                    let r = q.enqueue(handle: h, length: length, hash: hash, ecnCapable: rng.next() % 2 == 0,
                                      continuesTrain: rng.next() % 3 != 0, now: now, dropped: &dropped)
                    XCTAssertEqual(r.dropped, dropped.count)
                } else if roll < 95 {
                    if let d = q.dequeue(now: now, dropped: &dropped) {
                        for h in dropped { takeBack(h, from: p) }
                        droppedTotal += dropped.count
                        dropped.removeAll(keepingCapacity: true)
                        takeBack(d.handle, from: p)
                        sent += 1
                        if d.markCE { marks += 1 }
                    }
                } else if roll < 99 {
                    now += rng.next() % (3 * Self.ms)
                } else {
                    now += rng.next() % (5 * Self.ms)
                    _ = q.releaseIfIdle(now: now)
                }
                for h in dropped { takeBack(h, from: p) }
                droppedTotal += dropped.count
                dropped.removeAll(keepingCapacity: true)
                XCTAssertEqual(q.queuedPackets, packets[p])
                XCTAssertEqual(q.queuedBytes, bytes[p])
                XCTAssertLessThanOrEqual(q.queuedPackets, 600)
            }
            for (p, q) in peers.enumerated() {
                q.removeAll(dropped: &dropped)
                for h in dropped { takeBack(h, from: p) }
                dropped.removeAll(keepingCapacity: true)
                XCTAssertEqual(q.queuedPackets, 0)
                XCTAssertEqual(q.queuedBytes, 0)
                XCTAssertNil(q.dequeue(now: now, dropped: &dropped))
            }
            XCTAssertEqual(free.count, capacity, "seed \(seed): every handle came back")
            XCTAssertTrue(owner.allSatisfy { $0 == -1 })
            let codel = peers.reduce(0) { $0 + $1.stats.codelDrops }
            let limit = peers.reduce(0) { $0 + $1.stats.limitDrops }
            XCTAssertEqual(Int(codel + limit), droppedTotal)
            XCTAssertEqual(Int(peers.reduce(0) { $0 + $1.stats.ceMarks }), marks)
            XCTAssertGreaterThan(codel, 0, "seed \(seed): the run exercised CoDel drops")
            XCTAssertGreaterThan(limit, 0, "seed \(seed): the run exercised limit drops")
            XCTAssertGreaterThan(marks, 0, "seed \(seed): the run exercised CE marks")
            XCTAssertGreaterThan(sent, enqueued / 2)
        }
    }
}
