// FQ-CoDel (RFC 8290) per peer, as Linux runs it (net/sched/sch_fq_codel.c), over packet handles.
//
// A handle is a UInt32 index into the caller's packet pool; the scheduler never touches packet memory. The caller
// says, per handle, its length, enqueue time, flow hash and whether it is ECN-capable, and is told which handle to
// send next, whether to mark it CE first, and which handles were dropped (it frees those).
//
//   FQCoDelShared  one per device: the parameters and, indexed by handle, each queued packet's link to the next
//                  packet of its flow, its length, ECN capability and enqueue time. Preallocated for the whole
//                  pool, so queueing a packet allocates nothing.
//   PeerQueue      one per peer: a flow table (CoDel state, head/tail, DRR deficit per flow, byte backlogs) that
//                  is allocated on the first enqueue and can be released after the peer has been idle for a while,
//                  plus the new and old flow lists. An idle peer costs a few hundred bytes (see the tests).
//
// Enqueue: flow = reciprocal_scale(hash, flows) → append to the flow's FIFO → a flow on no list joins the tail of
//   the new list with a full quantum → over the packet or byte limit: drop from the head of the fattest flow by
//   bytes, up to dropBatchSize packets or until half its bytes are gone (at least one), and add the number dropped
//   to that flow's CoDel count.
// Dequeue: take the head of the new list, else of the old list → deficit spent: add a quantum, move it to the tail
//   of the old list, retry → run CoDel on the flow → empty: a flow from the new list goes to the tail of the old
//   list if that is non-empty (so a trickle cannot starve the old flows), otherwise it leaves the lists and counts
//   as new on its next packet; retry → else charge the packet's length to the deficit and return it.
// Trains: packets the caller marks as continuing the one queued before them in their flow (a TUN read's run of
//   one flow's segments) are served right after it, whatever the deficit, as Linux serves a TSO skb whole.
//
// Differences from Linux, and why:
//   - The limits are per peer (each peer is its own qdisc) and the byte limit counts packet lengths, not skb
//     truesize. Default limit 1024 packets, as wireguard-go's per-peer outbound queue: every peer draws on one
//     device pool, so Linux's 10240 per qdisc would let one peer hold most of it.
//   - No tc classifier or skb->priority override: the flow comes from the hash only.
//   - The flow table can be released when a peer idles (Linux allocates it once per qdisc).
//   - Linux sees a super-packet as one skb; here it arrives split into segments, so trains put it back together
//     for the scheduler (see `dequeue`).
//
// Threading: a PeerQueue is used by one thread at a time (the caller serialises per peer). Different PeerQueues
// may run on different threads against one FQCoDelShared: each handle is in at most one queue, and a queue only
// writes the per-handle entries of handles it holds.
import CShims

/// Device-wide FQ-CoDel parameters.
public struct FQCoDelParameters: Sendable, Equatable {
    /// Flow queues per peer, 1...65536 (Linux default 1024).
    public var flowsPerPeer: Int
    /// DRR quantum in bytes: one tunnel MTU (Linux: psched_mtu, 256...1 MiB).
    public var quantum: UInt32
    /// Packets a peer may queue before the fattest flow is dropped from.
    public var limitPackets: Int
    /// Bytes (sum of packet lengths) a peer may queue before the fattest flow is dropped from; at most 2^31.
    public var memoryLimitBytes: Int
    /// Most packets dropped from the fattest flow per enqueue (Linux default 64, at least 1).
    public var dropBatchSize: Int
    /// Per-flow CoDel; its `mtu` is the "at most one MTU queued" threshold.
    public var codel: CoDelParameters
    /// A peer whose queue has been empty this long (nanoseconds) may give its flow table back. Default 32
    /// intervals: well past CoDel's 16-interval re-entry memory, so a fresh table behaves as the old one would.
    public var idleReleaseAfter: UInt64

    public static let defaultFlows = 1024
    public static let defaultLimitPackets = 1024
    public static let defaultMemoryLimitBytes = 4 << 20
    public static let defaultDropBatchSize = 64

    /// Defaults for a tunnel of MTU `mtu`: quantum and CoDel's MTU threshold both one tunnel MTU.
    public init(mtu: UInt32 = 1420, flowsPerPeer: Int = defaultFlows, limitPackets: Int = defaultLimitPackets,
                memoryLimitBytes: Int = defaultMemoryLimitBytes, dropBatchSize: Int = defaultDropBatchSize,
                target: UInt64 = CoDelParameters.defaultTarget, interval: UInt64 = CoDelParameters.defaultInterval,
                ecn: Bool = true, maxDropsPerDequeue: Int = CoDelParameters.defaultMaxDropsPerDequeue,
                idleReleaseAfter: UInt64? = nil) {
        self.flowsPerPeer = flowsPerPeer
        self.quantum = mtu
        self.limitPackets = limitPackets
        self.memoryLimitBytes = memoryLimitBytes
        self.dropBatchSize = dropBatchSize
        self.codel = CoDelParameters(target: target, interval: interval, mtu: mtu, ecn: ecn,
                                     maxDropsPerDequeue: maxDropsPerDequeue)
        self.idleReleaseAfter = idleReleaseAfter ?? 32 * interval
    }

    func validate() {
        precondition((1...65536).contains(flowsPerPeer), "fq_codel: flows must be 1...65536")
        precondition((256...(1 << 20)).contains(quantum), "fq_codel: quantum must be 256...1 MiB")
        precondition(limitPackets >= 1, "fq_codel: limit must be at least one packet")
        precondition((1...(1 << 31)).contains(memoryLimitBytes), "fq_codel: memory limit must be 1...2^31 bytes")
        precondition(dropBatchSize >= 1, "fq_codel: drop batch must be at least one packet")
    }
}

/// What happened to the packet handed to `PeerQueue.enqueue`.
public struct FQCoDelEnqueueResult: Sendable, Equatable {
    /// Handles the limit dropped (appended to the caller's buffer); may include the one just enqueued.
    public var dropped: Int
    /// The drop hit the enqueuing packet's own flow (Linux returns NET_XMIT_CN).
    public var ownFlowDropped: Bool
}

/// The next packet to send.
public struct FQCoDelDequeued: Sendable, Equatable {
    public var handle: UInt32
    /// Set CE in the packet's IP header before sending.
    public var markCE: Bool
    /// Nanoseconds the packet spent queued.
    public var sojourn: UInt64
}

/// Counters of one PeerQueue.
public struct FQCoDelStats: Sendable, Equatable {
    /// Packets CoDel dropped at the head.
    public var codelDrops: UInt64 = 0
    /// Packets dropped from the fattest flow over the packet or byte limit.
    public var limitDrops: UInt64 = 0
    /// Of those, drops when the byte limit (rather than only the packet limit) was exceeded.
    public var overMemoryDrops: UInt64 = 0
    /// Packets CoDel asked to mark CE instead of dropping.
    public var ceMarks: UInt64 = 0
    /// Sojourn of the last packet dequeued, nanoseconds.
    public var lastSojourn: UInt64 = 0
    /// Times a flow joined the new list.
    public var newFlowsAdded: UInt64 = 0
    /// Times the flow table was allocated (first use, and again after each idle release).
    public var tableAllocations: UInt64 = 0

    public init() {}
}

/// Per-handle entry: where a queued packet links to and what the scheduler must remember about it.
struct FQHandleSlot {
    var enqueueTime: UInt64
    /// Next handle in the same flow (or in a chain of dropped handles).
    var next: UInt32
    /// Length in the low 30 bits, continues-a-train in bit 30, ECN-capable in bit 31.
    var lengthAndECN: UInt32

    static let none: UInt32 = .max
    static let ecnBit: UInt32 = 1 << 31
    static let trainBit: UInt32 = 1 << 30
    static let lengthMask: UInt32 = trainBit - 1

    @inline(__always) var length: UInt32 { lengthAndECN & Self.lengthMask }
    @inline(__always) var ecnCapable: Bool { lengthAndECN & Self.ecnBit != 0 }
    @inline(__always) var continuesTrain: Bool { lengthAndECN & Self.trainBit != 0 }
}

/// One flow queue.
struct FQFlow {
    var codel = CoDelState()
    var head: UInt32 = FQHandleSlot.none
    var tail: UInt32 = FQHandleSlot.none
    /// Next flow on the same (new or old) list, `listEnd` at the tail, `unlisted` when on neither.
    var link: UInt32 = FQFlow.unlisted
    var deficit: Int32 = 0
    /// `PeerQueue.dispatchStamp` when `dequeue` last served this flow: until everything dispatched under that
    /// stamp has been sent, `dequeueSparse` leaves the flow alone, so its next packet cannot overtake it.
    var lastDispatch: UInt32 = 0

    static let listEnd: UInt32 = .max
    static let unlisted: UInt32 = .max - 1
}

/// The device-wide part: parameters and the per-handle table.
public final class FQCoDelShared: @unchecked Sendable {  // slot i is written only by the PeerQueue holding handle i
    public let parameters: FQCoDelParameters
    /// Handles are 0..<handleCapacity.
    public let handleCapacity: Int
    let slots: UnsafeMutablePointer<FQHandleSlot>

    public init(handleCapacity: Int, parameters: FQCoDelParameters = FQCoDelParameters()) {
        precondition(handleCapacity >= 1 && handleCapacity < Int(UInt32.max - 1), "fq_codel: bad handle capacity")
        parameters.validate()
        self.parameters = parameters
        self.handleCapacity = handleCapacity
        slots = .allocate(capacity: handleCapacity)
        slots.initialize(repeating: FQHandleSlot(enqueueTime: 0, next: FQHandleSlot.none, lengthAndECN: 0),
                         count: handleCapacity)
    }

    deinit { slots.deallocate() }

    public func makePeerQueue() -> PeerQueue { PeerQueue(shared: self) }

    /// The length `handle` was enqueued with (valid while it is queued or just dequeued).
    @inline(__always) public func length(of handle: UInt32) -> UInt32 { slots[Int(handle)].length }
}

/// CoDel's view of one flow during a dequeue: pops from the flow, keeps the peer's totals, chains drops.
struct FQFlowFIFO: CoDelQueue {
    let slots: UnsafeMutablePointer<FQHandleSlot>
    let flow: UnsafeMutablePointer<FQFlow>
    let flowBacklog: UnsafeMutablePointer<UInt32>
    var packets: Int
    var backlogBytes: UInt64
    var droppedHead = FQHandleSlot.none
    var droppedTail = FQHandleSlot.none

    @inline(__always)
    mutating func popHead() -> CoDelPacket? {
        let h = flow.pointee.head
        if h == FQHandleSlot.none { return nil }
        let s = slots[Int(h)]
        flow.pointee.head = s.next
        if s.next == FQHandleSlot.none { flow.pointee.tail = FQHandleSlot.none } else {
            // The flow's next head, needed when the round comes back to this flow. Written at enqueue, milliseconds
            // ago, it has usually left the cache by then: its load was half of dequeue's time in a perf profile.
            vf_prefetch_read(slots + Int(s.next))
        }
        let length = s.length
        flowBacklog.pointee -= length
        packets -= 1
        backlogBytes -= UInt64(length)
        return CoDelPacket(handle: h, length: length, enqueueTime: s.enqueueTime, ecnCapable: s.ecnCapable)
    }

    @inline(__always)
    mutating func drop(_ packet: CoDelPacket) {
        // The handle's link is free once popped: reuse it to chain the drops of this call.
        slots[Int(packet.handle)].next = FQHandleSlot.none
        if droppedTail == FQHandleSlot.none { droppedHead = packet.handle } else {
            slots[Int(droppedTail)].next = packet.handle
        }
        droppedTail = packet.handle
    }
}

/// One peer's FQ-CoDel scheduler.
public final class PeerQueue: @unchecked Sendable {  // used by one thread at a time; see the file comment
    /// Keeps the per-handle table alive; the hot path goes through the copies below.
    public let shared: FQCoDelShared
    private let slots: UnsafeMutablePointer<FQHandleSlot>
    private let handleCapacity: UInt32
    private let flowCount: UInt32
    private let quantum: Int32
    private let limitPackets: Int
    private let memoryLimit: UInt64
    private let dropBatch: UInt32
    private let idleReleaseAfter: UInt64
    private let codel: CoDelParameters

    /// The flow table and its byte backlogs (a separate array, scanned for the fattest flow); nil until used.
    @exclusivity(unchecked) private var flows: UnsafeMutablePointer<FQFlow>?
    @exclusivity(unchecked) private var backlogs: UnsafeMutablePointer<UInt32>?
    @exclusivity(unchecked) private var newHead = FQFlow.listEnd
    @exclusivity(unchecked) private var newTail = FQFlow.listEnd
    @exclusivity(unchecked) private var oldHead = FQFlow.listEnd
    @exclusivity(unchecked) private var oldTail = FQFlow.listEnd
    /// Flows on the new and on the old list.
    @exclusivity(unchecked) public private(set) var newFlows = 0
    @exclusivity(unchecked) public private(set) var oldFlows = 0
    @exclusivity(unchecked) public private(set) var queuedPackets = 0
    @exclusivity(unchecked) public private(set) var queuedBytes: UInt64 = 0
    @exclusivity(unchecked) public private(set) var stats = FQCoDelStats()
    /// Stamped on each flow `dequeue` serves (see FQFlow.lastDispatch); the caller numbers its dispatches.
    @exclusivity(unchecked) public var dispatchStamp: UInt32 = 0
    /// Time of the last enqueue or dequeue that returned a packet.
    @exclusivity(unchecked) private var lastActive: UInt64 = 0
    /// The flow `dequeue` last served, while the rest of its train may follow (listEnd: none).
    @exclusivity(unchecked) private var trainFlow = FQFlow.listEnd

    init(shared: FQCoDelShared) {
        let p = shared.parameters
        self.shared = shared
        slots = shared.slots
        handleCapacity = UInt32(shared.handleCapacity)
        flowCount = UInt32(p.flowsPerPeer)
        quantum = Int32(p.quantum)
        limitPackets = p.limitPackets
        memoryLimit = UInt64(p.memoryLimitBytes)
        dropBatch = UInt32(p.dropBatchSize)
        idleReleaseAfter = p.idleReleaseAfter
        codel = p.codel
    }

    deinit { releaseTable() }

    /// Flows on either list: those with packets, plus emptied ones the scheduler has not yet passed over.
    public var activeFlows: Int { newFlows + oldFlows }

    /// Whether the flow table is allocated.
    public var hasFlowTable: Bool { flows != nil }

    /// Bytes of heap the flow table takes while allocated.
    public var flowTableBytes: Int {
        Int(flowCount) * (MemoryLayout<FQFlow>.stride + MemoryLayout<UInt32>.stride)
    }

    /// A flow's CoDel variables (tests and diagnostics); nil without a flow table.
    func codelState(flow: Int) -> CoDelState? { flows.map { $0[flow].codel } }

    /// Packets queued on one flow (walks its FIFO; tests and diagnostics).
    func packets(flow: Int) -> Int {
        guard let flows else { return 0 }
        var n = 0
        var h = flows[flow].head
        while h != FQHandleSlot.none { n += 1; h = slots[Int(h)].next }
        return n
    }

    /// The flow a hash maps to: reciprocal_scale(hash, flows) = (hash · flows) >> 32.
    @inline(__always)
    public func flowIndex(hash: UInt32) -> Int {
        Int((UInt64(hash) &* UInt64(flowCount)) >> 32)
    }

    // MARK: enqueue

    /// Queues `handle`. Over the limit, drops from the fattest flow and appends the dropped handles to `dropped`
    /// (reserve room for `dropBatchSize` to stay allocation-free). `length` is 1...2^30−1 bytes.
    /// `continuesTrain`: the packet belongs to the same burst as the packet of its flow queued just before it (the
    /// caller marks a TUN read's run of one flow's packets, up to 64 KiB); see `dequeue`.
    @discardableResult
    public func enqueue(handle: UInt32, length: UInt32, hash: UInt32, ecnCapable: Bool, continuesTrain: Bool = false,
                        now: UInt64, dropped: inout [UInt32]) -> FQCoDelEnqueueResult {
        precondition(handle < handleCapacity, "fq_codel: handle out of range")
        precondition(length > 0 && length <= FQHandleSlot.lengthMask, "fq_codel: bad packet length")
        if flows == nil { allocateTable() }
        let flows = self.flows.unsafelyUnwrapped
        let backlogs = self.backlogs.unsafelyUnwrapped
        let idx = flowIndex(hash: hash)

        slots[Int(handle)] = FQHandleSlot(enqueueTime: now, next: FQHandleSlot.none,
                                          lengthAndECN: length | (ecnCapable ? FQHandleSlot.ecnBit : 0)
                                            | (continuesTrain ? FQHandleSlot.trainBit : 0))
        let f = flows + idx
        if f.pointee.tail == FQHandleSlot.none { f.pointee.head = handle } else {
            slots[Int(f.pointee.tail)].next = handle
        }
        f.pointee.tail = handle
        backlogs[idx] += length
        queuedPackets += 1
        queuedBytes += UInt64(length)
        lastActive = now

        if f.pointee.link == FQFlow.unlisted {
            pushNew(UInt32(idx), flows)
            f.pointee.deficit = quantum
            stats.newFlowsAdded &+= 1
        }

        let overMemory = queuedBytes > memoryLimit
        guard queuedPackets > limitPackets || overMemory else {
            return FQCoDelEnqueueResult(dropped: 0, ownFlowDropped: false)
        }
        let (victim, n) = dropFromFattest(flows, backlogs, dropped: &dropped)
        stats.limitDrops &+= UInt64(n)
        if overMemory { stats.overMemoryDrops &+= UInt64(n) }
        return FQCoDelEnqueueResult(dropped: Int(n), ownFlowDropped: victim == idx)
    }

    /// Linux `fq_codel_drop`: from the head of the flow with the most bytes, drop up to `dropBatch` packets or
    /// until half its bytes are gone, at least one; then raise its CoDel count by the number dropped.
    private func dropFromFattest(_ flows: UnsafeMutablePointer<FQFlow>, _ backlogs: UnsafeMutablePointer<UInt32>,
                                 dropped: inout [UInt32]) -> (victim: Int, count: UInt32) {
        var victim = 0
        var most: UInt32 = 0
        for i in 0..<Int(flowCount) where backlogs[i] > most {
            most = backlogs[i]
            victim = i
        }
        let threshold = most >> 1
        let f = flows + victim
        var n: UInt32 = 0
        var bytes: UInt32 = 0
        repeat {
            let h = f.pointee.head
            let s = slots[Int(h)]
            f.pointee.head = s.next
            if s.next == FQHandleSlot.none { f.pointee.tail = FQHandleSlot.none }
            bytes += s.length
            n += 1
            dropped.append(h)
        } while n < dropBatch && bytes < threshold && f.pointee.head != FQHandleSlot.none
        f.pointee.codel.addToCount(n)
        backlogs[victim] -= bytes
        queuedPackets -= Int(n)
        queuedBytes -= UInt64(bytes)
        return (victim, n)
    }

    // MARK: dequeue

    /// The next packet to send, or nil when nothing is queued. Handles CoDel dropped on the way are appended to
    /// `dropped` (at most `maxDropsPerDequeue` per flow visited).
    ///
    /// Trains: a flow served a packet whose successor continues its train (enqueued with `continuesTrain`) is
    /// served that successor next, whatever its deficit and ahead of flows waiting on the new list, until the
    /// train ends. Linux's fq_codel sees a TSO super-packet as one skb and sends it whole, charging all its bytes
    /// to the flow's deficit, which then stays below zero for as many rounds as the bytes are worth; a train is
    /// that, segment by segment. Fairness by bytes is unchanged, and the segments leave together, so the receiver
    /// can coalesce them again (interleaved one MTU at a time, four TCP flows took the peer 13 % more TUN writes
    /// per byte, and its TCP sent 18 % more ACKs).
    public func dequeue(now: UInt64, dropped: inout [UInt32]) -> FQCoDelDequeued? {
        guard let flows = self.flows, let backlogs = self.backlogs else { return nil }
        if trainFlow != FQFlow.listEnd {
            let idx = trainFlow
            trainFlow = FQFlow.listEnd
            let f = flows + Int(idx)
            // The flow is still at the head of its list (serving does not move it; only dequeue rotates).
            if f.pointee.head != FQHandleSlot.none && slots[Int(f.pointee.head)].continuesTrain {
                let r = serve(f, backlog: backlogs + Int(idx), now: now, dropped: &dropped)
                if let packet = r.packet {
                    f.pointee.lastDispatch = dispatchStamp
                    trainFlow = idx
                    return charge(f, packet, markCE: r.markCE, now: now)
                }
                // CoDel dropped the rest of the train and the flow is empty: the rounds below rotate it as any
                // overdrawn flow until its deficit is positive again, then take it off the lists. (Had CoDel, or a
                // limit drop, taken only the train's last segments, the packet served here starts the flow's next
                // train ahead of its turn, and that whole train follows: all its bytes are still charged, so the
                // flow gives the time back in later rounds.)
            }
        }
        while true {
            var fromNew = true
            var idx = newHead
            if idx == FQFlow.listEnd {
                idx = oldHead
                fromNew = false
                if idx == FQFlow.listEnd { return nil }
            }
            let f = flows + Int(idx)
            if f.pointee.deficit <= 0 {
                // Used up its share this round: top it up and send it to the back of the old list.
                f.pointee.deficit += quantum
                popHead(fromNew: fromNew, flows)
                pushOld(idx, flows)
                continue
            }

            let r = serve(f, backlog: backlogs + Int(idx), now: now, dropped: &dropped)
            guard let packet = r.packet else {
                // Empty. A new flow passes through the old list once (if there is one) so that a flow which
                // keeps emptying cannot come back as new and starve the old flows.
                popHead(fromNew: fromNew, flows)
                if fromNew && oldHead != FQFlow.listEnd {
                    pushOld(idx, flows)
                } else {
                    f.pointee.link = FQFlow.unlisted
                }
                continue
            }
            f.pointee.lastDispatch = dispatchStamp
            trainFlow = idx
            return charge(f, packet, markCE: r.markCE, now: now)
        }
    }

    /// New flows `dequeueSparse` looks at, from the head of the new list.
    public static let sparseLookahead = 8

    /// The packet of a sparse flow: the first of the first `sparseLookahead` flows on the new list that holds
    /// exactly one packet and has quantum left (a ping, a DNS query, a lone ACK; a bulk flow arrives several
    /// packets at a time, or has moved to the old list). Served as `dequeue` serves a flow (CoDel, deficit), only
    /// ahead of new flows that arrived with a burst; the flow keeps its place on the new list, empty, and leaves it
    /// as any emptied new flow does. Nil if there is none. The send path's express lane takes these packets past
    /// the crypto pool's in-flight batches (Pipeline/SendQueue.swift). A flow `dequeue` served under a
    /// `dispatchStamp` after `sentThrough` (wrapping order) still has a packet on its way and is passed over, so
    /// that no flow's packets overtake each other. Served packets are not stamped: the caller sends them at once.
    public func dequeueSparse(now: UInt64, sentThrough: UInt32, dropped: inout [UInt32]) -> FQCoDelDequeued? {
        guard let flows = self.flows, let backlogs = self.backlogs else { return nil }
        var idx = newHead
        var looked = 0
        while idx != FQFlow.listEnd {
            let f = flows[Int(idx)]
            if f.deficit > 0 && f.head != FQHandleSlot.none && f.head == f.tail
                && Int32(bitPattern: f.lastDispatch &- sentThrough) <= 0 { break }
            looked += 1
            if looked == PeerQueue.sparseLookahead { return nil }
            idx = f.link
        }
        guard idx != FQFlow.listEnd else { return nil }
        let f = flows + Int(idx)
        let r = serve(f, backlog: backlogs + Int(idx), now: now, dropped: &dropped)
        guard let packet = r.packet else { return nil }
        return charge(f, packet, markCE: r.markCE, now: now)
    }

    /// Runs CoDel's dequeue on flow `f`; CoDel's drops are appended to `dropped`.
    @inline(__always)
    private func serve(_ f: UnsafeMutablePointer<FQFlow>, backlog: UnsafeMutablePointer<UInt32>, now: UInt64,
                       dropped: inout [UInt32]) -> CoDelDequeueResult {
        var fifo = FQFlowFIFO(slots: slots, flow: f, flowBacklog: backlog, packets: queuedPackets,
                              backlogBytes: queuedBytes)
        var vars = f.pointee.codel
        let r = vars.dequeue(queue: &fifo, now: now, params: codel)
        f.pointee.codel = vars
        queuedPackets = fifo.packets
        queuedBytes = fifo.backlogBytes
        if r.drops > 0 {
            stats.codelDrops &+= UInt64(r.drops)
            var h = fifo.droppedHead
            while h != FQHandleSlot.none {
                dropped.append(h)
                h = slots[Int(h)].next
            }
        }
        return r
    }

    /// Charges a served packet to its flow's deficit and the statistics.
    @inline(__always)
    private func charge(_ f: UnsafeMutablePointer<FQFlow>, _ packet: CoDelPacket, markCE: Bool,
                        now: UInt64) -> FQCoDelDequeued {
        f.pointee.deficit -= Int32(truncatingIfNeeded: packet.length)
        if markCE { stats.ceMarks &+= 1 }
        let sojourn = now > packet.enqueueTime ? now - packet.enqueueTime : 0
        stats.lastSojourn = sojourn
        lastActive = now
        return FQCoDelDequeued(handle: packet.handle, markCE: markCE, sojourn: sojourn)
    }

    // MARK: lists

    @inline(__always)
    private func pushNew(_ idx: UInt32, _ flows: UnsafeMutablePointer<FQFlow>) {
        flows[Int(idx)].link = FQFlow.listEnd
        if newTail == FQFlow.listEnd { newHead = idx } else { flows[Int(newTail)].link = idx }
        newTail = idx
        newFlows += 1
    }

    @inline(__always)
    private func pushOld(_ idx: UInt32, _ flows: UnsafeMutablePointer<FQFlow>) {
        flows[Int(idx)].link = FQFlow.listEnd
        if oldTail == FQFlow.listEnd { oldHead = idx } else { flows[Int(oldTail)].link = idx }
        oldTail = idx
        oldFlows += 1
    }

    /// Unlinks the head of the new or old list; the caller relinks it or marks it unlisted.
    @inline(__always)
    private func popHead(fromNew: Bool, _ flows: UnsafeMutablePointer<FQFlow>) {
        if fromNew {
            newHead = flows[Int(newHead)].link
            if newHead == FQFlow.listEnd { newTail = FQFlow.listEnd }
            newFlows -= 1
        } else {
            oldHead = flows[Int(oldHead)].link
            if oldHead == FQFlow.listEnd { oldTail = FQFlow.listEnd }
            oldFlows -= 1
        }
    }

    // MARK: table lifetime

    private func allocateTable() {
        let n = Int(flowCount)
        let f = UnsafeMutablePointer<FQFlow>.allocate(capacity: n)
        f.initialize(repeating: FQFlow(), count: n)
        let b = UnsafeMutablePointer<UInt32>.allocate(capacity: n)
        b.initialize(repeating: 0, count: n)
        flows = f
        backlogs = b
        newHead = FQFlow.listEnd; newTail = FQFlow.listEnd; newFlows = 0
        oldHead = FQFlow.listEnd; oldTail = FQFlow.listEnd; oldFlows = 0
        trainFlow = FQFlow.listEnd
        stats.tableAllocations &+= 1
    }

    private func releaseTable() {
        flows?.deallocate()
        backlogs?.deallocate()
        flows = nil
        backlogs = nil
        newHead = FQFlow.listEnd; newTail = FQFlow.listEnd; newFlows = 0
        oldHead = FQFlow.listEnd; oldTail = FQFlow.listEnd; oldFlows = 0
        trainFlow = FQFlow.listEnd
    }

    /// Gives the flow table back if nothing is queued and nothing has moved for `idleReleaseAfter`; the next
    /// enqueue allocates a fresh one. Call it from a housekeeping timer. Returns true if it released.
    @discardableResult
    public func releaseIfIdle(now: UInt64) -> Bool {
        guard flows != nil, queuedPackets == 0, now &- lastActive >= idleReleaseAfter else { return false }
        releaseTable()
        return true
    }

    /// Removes every queued packet (peer removal, key loss), appending their handles to `dropped`; the table is
    /// kept. Counted in no drop statistic.
    public func removeAll(dropped: inout [UInt32]) {
        guard let flows, let backlogs else { return }
        for i in 0..<Int(flowCount) {
            var h = flows[i].head
            while h != FQHandleSlot.none {
                dropped.append(h)
                h = slots[Int(h)].next
            }
            flows[i] = FQFlow()
            backlogs[i] = 0
        }
        newHead = FQFlow.listEnd; newTail = FQFlow.listEnd; newFlows = 0
        oldHead = FQFlow.listEnd; oldTail = FQFlow.listEnd; oldFlows = 0
        trainFlow = FQFlow.listEnd
        queuedPackets = 0
        queuedBytes = 0
    }
}
