// Packet buffers: one slab per direction, carved into fixed slots, grouped in batches that move between stages.
import Crypto
import Synchronization

/// One contiguous allocation of `slotCount` buffers of `slotSize` bytes, 64-byte aligned.
public final class PacketSlab: @unchecked Sendable {  // the memory is partitioned: each slot is owned by one batch
    public let slotSize: Int
    public let slotCount: Int
    public let base: UnsafeMutableRawPointer

    public init(slotSize: Int, slotCount: Int) {
        self.slotSize = (slotSize + 63) & ~63
        self.slotCount = slotCount
        base = .allocate(byteCount: self.slotSize * slotCount, alignment: 64)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: self.slotSize * slotCount)
    }

    deinit { base.deallocate() }

    @inline(__always) public func slot(_ i: Int) -> UnsafeMutableRawPointer { base + i * slotSize }
}

/// Up to `capacity` packets and their per-packet metadata, all preallocated. A batch is owned by exactly one
/// stage at a time; it is handed on through `BatchQueue`s, and its `crypted` flag is the release/acquire point
/// between a crypto worker and the serial stage waiting for it.
public final class PacketBatch: @unchecked Sendable {  // ownership passes between threads through locked queues and the crypted atomic
    public static let capacity = 128

    public enum Work: Sendable { case encrypt, decrypt }

    public let capacity: Int
    public var work: Work = .encrypt
    public var count = 0
    /// Slot start of each packet (fixed for the life of the batch).
    public let slots: UnsafeMutablePointer<UnsafeMutableRawPointer>
    /// Packet or datagram length; for send, the padded plaintext length after routing.
    public let lengths: UnsafeMutablePointer<UInt32>
    /// Unpadded inner length (send) or plaintext length (receive).
    public let innerLengths: UnsafeMutablePointer<UInt32>
    public let endpoints: UnsafeMutablePointer<Endpoint>
    public let truncated: UnsafeMutablePointer<UInt8>
    public let items: UnsafeMutablePointer<AEADItem>
    /// Index into `keypairs` for each packet, or `PacketBatch.dropped`.
    public let keypairSlot: UnsafeMutablePointer<UInt8>
    public static let dropped: UInt8 = 0xff
    /// Distinct keypairs the batch uses; holding them keeps their keys alive while workers use raw pointers.
    public var keypairs: [Keypair] = []
    /// Scratch pointers for I/O calls.
    public let ioPointers: UnsafeMutablePointer<UnsafeMutableRawPointer>
    public let ioLengths: UnsafeMutablePointer<UInt32>
    public let crypted = Atomic<Bool>(false)

    init(slab: PacketSlab, firstSlot: Int, capacity: Int) {
        self.capacity = capacity
        slots = .allocate(capacity: capacity)
        for i in 0..<capacity { slots[i] = slab.slot(firstSlot + i) }
        lengths = .allocate(capacity: capacity); lengths.initialize(repeating: 0, count: capacity)
        innerLengths = .allocate(capacity: capacity); innerLengths.initialize(repeating: 0, count: capacity)
        endpoints = .allocate(capacity: capacity); endpoints.initialize(repeating: Endpoint(), count: capacity)
        truncated = .allocate(capacity: capacity); truncated.initialize(repeating: 0, count: capacity)
        let dummy = slab.base
        items = .allocate(capacity: capacity)
        items.initialize(repeating: AEADItem(data: dummy, key: UnsafeRawPointer(dummy), counter: 0, length: 0),
                         count: capacity)
        keypairSlot = .allocate(capacity: capacity); keypairSlot.initialize(repeating: 0, count: capacity)
        ioPointers = .allocate(capacity: capacity); ioPointers.initialize(repeating: dummy, count: capacity)
        ioLengths = .allocate(capacity: capacity); ioLengths.initialize(repeating: 0, count: capacity)
        keypairs.reserveCapacity(capacity)
    }

    deinit {
        slots.deallocate(); lengths.deallocate(); innerLengths.deallocate(); endpoints.deallocate()
        truncated.deallocate(); items.deallocate(); keypairSlot.deallocate(); ioPointers.deallocate()
        ioLengths.deallocate()
    }

    /// Returns the batch-local slot for `keypair`, adding it if new (one retain per distinct keypair per batch).
    @inline(__always) public func slot(for keypair: Keypair) -> UInt8 {
        if let last = keypairs.last, last === keypair { return UInt8(keypairs.count - 1) }
        for (i, k) in keypairs.enumerated() where k === keypair { return UInt8(i) }
        keypairs.append(keypair)
        return UInt8(keypairs.count - 1)
    }

    public func reset() {
        count = 0
        keypairs.removeAll(keepingCapacity: true)
        crypted.store(false, ordering: .relaxed)
    }
}

/// A fixed set of batches over one slab, handed out and returned under a lock (per batch, not per packet).
public final class BatchPool: @unchecked Sendable {  // `free` is only touched under `lock`
    public let slab: PacketSlab
    private var free: [PacketBatch]
    private let lock = ConditionLock()
    private var closed = false

    public init(batches: Int, batchCapacity: Int, slotSize: Int) {
        slab = PacketSlab(slotSize: slotSize, slotCount: batches * batchCapacity)
        var all: [PacketBatch] = []
        for b in 0..<batches { all.append(PacketBatch(slab: slab, firstSlot: b * batchCapacity, capacity: batchCapacity)) }
        free = all
    }

    /// Waits for a free batch; nil once the pool is closed.
    public func take() -> PacketBatch? {
        lock.withLock {
            while free.isEmpty && !closed { lock.wait() }
            if closed { return nil }
            let b = free.removeLast()
            b.reset()
            return b
        }
    }

    public func give(_ b: PacketBatch) {
        lock.withLock {
            free.append(b)
            lock.signal()
        }
    }

    public func close() { lock.withLock { closed = true; lock.broadcast() } }
}

/// A bounded FIFO of batches between pipeline stages, with blocking pop.
public final class BatchQueue: @unchecked Sendable {  // ring contents only touched under `lock`
    private var ring: [PacketBatch?]
    private var head = 0
    private var tail = 0
    private var size = 0
    private var closed = false
    public let lock = ConditionLock()

    public init(capacity: Int) { ring = Array(repeating: nil, count: capacity) }

    public func push(_ b: PacketBatch) {
        lock.withLock {
            precondition(size < ring.count, "batch queue sized below the batch pool")
            ring[tail] = b
            tail = (tail + 1) % ring.count
            size += 1
            lock.signal()
        }
    }

    /// Pops the head, waiting while empty; nil once closed.
    public func pop() -> PacketBatch? {
        lock.withLock {
            while size == 0 && !closed { lock.wait() }
            if size == 0 { return nil }
            let b = ring[head]!
            ring[head] = nil
            head = (head + 1) % ring.count
            size -= 1
            return b
        }
    }

    /// Pops the head once its crypto is done (the ordered stage); nil once closed.
    public func popCrypted() -> PacketBatch? {
        lock.withLock {
            while !closed && (size == 0 || !ring[head]!.crypted.load(ordering: .acquiring)) { lock.wait() }
            if closed { return nil }
            let b = ring[head]!
            ring[head] = nil
            head = (head + 1) % ring.count
            size -= 1
            return b
        }
    }

    /// Wakes a waiter in `popCrypted` after a batch's crypto finished.
    public func notify() { lock.withLock { lock.signal() } }

    public func close() { lock.withLock { closed = true; lock.broadcast() } }
}
