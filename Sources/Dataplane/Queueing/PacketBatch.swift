// Packet buffers: one slab per direction, carved into fixed slots, grouped in batches that move between stages.
import Crypto
import Glibc
import Synchronization

/// One contiguous allocation of `slotCount` buffers of `slotSize` bytes, 64-byte aligned; on NUMA node `node`
/// if one is given (Placement.allocate: page-aligned, bound to the node).
/// A slab of 2 MiB or more starts on a 2 MiB boundary and asks for transparent huge pages: packets are reached
/// in queueing order, all over tens of MiB, and with 4 KiB pages nearly every one cost a TLB miss (a page walk
/// per packet on the tun-reader's dispatch, seen in a perf profile). The memory is zeroed here, so every page is
/// resident from the start either way. Without huge pages (THP off) it works the same, only slower.
public final class PacketSlab: @unchecked Sendable {  // the memory is partitioned: each slot is owned by one batch
    public let slotSize: Int
    public let slotCount: Int
    public let base: UnsafeMutableRawPointer
    /// The node the memory is bound to, or nil (the kernel's default placement).
    public let node: Int?
    /// What was allocated (base lies inside it, aligned).
    private let allocation: UnsafeMutableRawPointer
    private let allocationBytes: Int

    static let hugePage = 2 << 20

    public init(slotSize: Int, slotCount: Int, node: Int? = nil) {
        self.slotSize = (slotSize + 63) & ~63
        self.slotCount = slotCount
        self.node = node
        let bytes = self.slotSize * slotCount
        let huge = bytes >= PacketSlab.hugePage
        let alignment = huge ? PacketSlab.hugePage : 64
        let allocationBytes = huge ? bytes + PacketSlab.hugePage : bytes
        let allocation = node.map { Placement.allocate(bytes: allocationBytes, node: $0) }
            ?? .allocate(byteCount: allocationBytes, alignment: 64)
        self.allocation = allocation
        self.allocationBytes = allocationBytes
        let address = (UInt(bitPattern: allocation) + UInt(alignment - 1)) & ~UInt(alignment - 1)
        base = UnsafeMutableRawPointer(bitPattern: address)!
        if huge {
            // A hint: EINVAL (no THP in this kernel) or a refusal leaves ordinary pages.
            // The whole pages from base to the end of the allocation (it runs past the slab by up to 2 MiB, so
            // the slab's last huge page fits too when the allocation reaches that far).
            let page = Int(sysconf(Int32(_SC_PAGESIZE)))
            let length = (allocation + allocationBytes - base) / page * page
            _ = madvise(base, length, MADV_HUGEPAGE)
        }
        base.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
    }

    deinit {
        if let node { Placement.free(allocation, bytes: allocationBytes, node: node) } else { allocation.deallocate() }
    }

    @inline(__always) public func slot(_ i: Int) -> UnsafeMutableRawPointer { base + i * slotSize }
}

/// Up to `capacity` packets and their per-packet metadata, all preallocated, over `bufferCount` fixed buffers of
/// the pool's slab. For sending, packet i lives in buffer i. For receiving, a buffer holds one message from the
/// socket, which may carry many datagrams (UDP GRO), and `packets[i]` points into it.
/// A batch is owned by exactly one stage at a time; it is handed on through queues, and `crypted` (set by the
/// worker that finishes its last chunk) is the release/acquire point for the serial stage waiting for it.
public final class PacketBatch: @unchecked Sendable {  // ownership passes between threads through the acquire/release rings (BatchPool, BatchQueue, CryptoQueue) and the crypted atomic
    /// Packets per send batch (and the most the TUN hands over per read call).
    public static let capacity = 128

    public enum Work: Sendable { case encrypt, decrypt }

    public let capacity: Int
    // One thread owns a batch at a time (it moves between them through the rings above), so the properties
    // touched per packet skip the dynamic exclusivity checks (a runtime call per access).
    @exclusivity(unchecked) public var work: Work = .encrypt
    @exclusivity(unchecked) public var count = 0
    public let bufferCount: Int
    public let bufferSize: Int
    /// Start of each buffer (fixed for the life of the batch).
    public let buffers: UnsafeMutablePointer<UnsafeMutableRawPointer>
    /// Start of each packet (the transport header for both directions).
    public let packets: UnsafeMutablePointer<UnsafeMutableRawPointer>
    /// Packet or datagram length; for send, header + padded plaintext + tag after routing.
    public let lengths: UnsafeMutablePointer<UInt32>
    /// Unpadded inner length (send).
    public let innerLengths: UnsafeMutablePointer<UInt32>
    public let endpoints: UnsafeMutablePointer<Endpoint>
    /// Outer TOS / traffic class: to send with (send), as received (receive).
    public let tos: UnsafeMutablePointer<UInt8>
    /// Kernel receive timestamp, CLOCK_REALTIME ns (receive; 0 if unknown).
    public let timestamps: UnsafeMutablePointer<UInt64>
    /// Receive CoDel (ReceiveAQM.swift): how long each datagram has waited since the kernel stamped it, ns
    /// (`ReceiveSojourn.unknown` if not known); how many leading datagrams had more than an MTU queued behind
    /// them; whether the receive call that filled the batch took every message it asked for.
    public let sojourns: UnsafeMutablePointer<UInt64>
    // (Receive CoDel's per-batch facts; backlogAboveMTU is read for every packet the tun-writer judges.)
    @exclusivity(unchecked) public var backlogAboveMTU = 0
    @exclusivity(unchecked) public var receiveFilled = false
    public let items: UnsafeMutablePointer<AEADItem>
    /// Index into `keypairs` for each packet, or `PacketBatch.dropped`.
    public let keypairSlot: UnsafeMutablePointer<UInt16>
    /// Send with fq_codel: the packet slot each packet lives in, given back after sending.
    public let handles: UnsafeMutablePointer<UInt32>
    public static let dropped: UInt16 = 0xffff
    /// Distinct keypairs the batch uses; holding them keeps their keys alive while workers use raw pointers.
    @exclusivity(unchecked) public var keypairs: [Keypair] = []
    /// Scratch pointers for I/O calls.
    public let ioPointers: UnsafeMutablePointer<UnsafeMutableRawPointer>
    public let ioLengths: UnsafeMutablePointer<UInt32>
    public let crypted = Atomic<Bool>(false)
    /// Crypto chunks not yet finished.
    public let pendingChunks = Atomic<Int>(0)

    init(slab: PacketSlab, firstSlot: Int, bufferCount: Int, capacity: Int) {
        self.capacity = capacity
        self.bufferCount = bufferCount
        self.bufferSize = slab.slotSize
        buffers = .allocate(capacity: bufferCount)
        for i in 0..<bufferCount { buffers[i] = slab.slot(firstSlot + i) }
        packets = .allocate(capacity: capacity)
        for i in 0..<capacity { packets[i] = buffers[min(i, bufferCount - 1)] }
        lengths = .allocate(capacity: capacity); lengths.initialize(repeating: 0, count: capacity)
        innerLengths = .allocate(capacity: capacity); innerLengths.initialize(repeating: 0, count: capacity)
        endpoints = .allocate(capacity: capacity); endpoints.initialize(repeating: Endpoint(), count: capacity)
        tos = .allocate(capacity: capacity); tos.initialize(repeating: 0, count: capacity)
        timestamps = .allocate(capacity: capacity); timestamps.initialize(repeating: 0, count: capacity)
        sojourns = .allocate(capacity: capacity); sojourns.initialize(repeating: 0, count: capacity)
        let dummy = slab.base
        items = .allocate(capacity: capacity)
        items.initialize(repeating: AEADItem(data: dummy, key: UnsafeRawPointer(dummy), counter: 0, length: 0),
                         count: capacity)
        keypairSlot = .allocate(capacity: capacity); keypairSlot.initialize(repeating: 0, count: capacity)
        handles = .allocate(capacity: capacity); handles.initialize(repeating: 0, count: capacity)
        ioPointers = .allocate(capacity: capacity); ioPointers.initialize(repeating: dummy, count: capacity)
        ioLengths = .allocate(capacity: capacity); ioLengths.initialize(repeating: 0, count: capacity)
        keypairs.reserveCapacity(capacity)
    }

    deinit {
        buffers.deallocate(); packets.deallocate(); lengths.deallocate(); innerLengths.deallocate()
        endpoints.deallocate(); tos.deallocate(); timestamps.deallocate(); sojourns.deallocate(); items.deallocate(); keypairSlot.deallocate(); handles.deallocate(); ioPointers.deallocate()
        ioLengths.deallocate()
    }

    /// The bytes of the first `count` entries of `lengths` (or `innerLengths`).
    @inline(__always) public func bytes(in lengths: UnsafeMutablePointer<UInt32>) -> Int {
        var total = 0
        for i in 0..<count { total += Int(lengths[i]) }
        return total
    }

    /// Returns the batch-local slot for `keypair`, adding it if new (one retain per distinct keypair per batch).
    @inline(__always) public func slot(for keypair: Keypair) -> UInt16 {
        if let last = keypairs.last, last === keypair { return UInt16(keypairs.count - 1) }
        for (i, k) in keypairs.enumerated() where k === keypair { return UInt16(i) }
        keypairs.append(keypair)
        return UInt16(keypairs.count - 1)
    }

    public func reset() {
        count = 0
        keypairs.removeAll(keepingCapacity: true)
        crypted.store(false, ordering: .relaxed)
    }
}
