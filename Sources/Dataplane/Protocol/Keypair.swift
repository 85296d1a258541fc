// A session's transport keys, and the previous/current/next rotation of a peer's keypairs.
import CShims
import Crypto

/// One direction pair of transport keys derived from a completed handshake.
public final class Keypair: @unchecked Sendable {  // immutable except the atomic send counter and `replay`, which is touched only under the device's delivery lock
    public let sendKey: SecretKey
    public let receiveKey: SecretKey
    public let localIndex: UInt32
    public let remoteIndex: UInt32
    public let isInitiator: Bool
    public let createdAt: UInt64
    /// Next counter to send; fetch-add reserves counters, so nonces are assigned serially without a lock.
    /// Private: its storage lives only as long as the keypair, so it is reached only through the keypair.
    private let sendCounter = SendCounter()
    /// Read and written only by the thread delivering received packets, under Device.deliveryLock (after
    /// decryption).
    public var replay = ReplayWindow()
    public let peerID: Int32

    public init(sendKey: SecretKey, receiveKey: SecretKey, localIndex: UInt32, remoteIndex: UInt32,
                isInitiator: Bool, createdAt: UInt64, peerID: Int32) {
        self.sendKey = sendKey
        self.receiveKey = receiveKey
        self.localIndex = localIndex
        self.remoteIndex = remoteIndex
        self.isInitiator = isInitiator
        self.createdAt = createdAt
        self.peerID = peerID
    }

    deinit { sendCounter.free() }

    /// Reserves `count` consecutive send counters; nil when the key must no longer send.
    @inline(__always)
    public func reserveCounters(_ count: UInt64, now: UInt64) -> UInt64? {
        if now &- createdAt >= ProtocolLimits.rejectAfterTime { return nil }
        let first = sendCounter.fetchAdd(count)
        if first >= ProtocolLimits.rejectAfterMessages || first &+ count > ProtocolLimits.rejectAfterMessages {
            // Pin the counter at the limit: otherwise repeated refused reservations keep adding until the
            // counter wraps past 2^64 and used nonces are handed out again.
            sendCounter.store(ProtocolLimits.rejectAfterMessages)
            return nil
        }
        return first
    }

    /// Counters handed out so far (the next one to send).
    @inline(__always) public var sentCount: UInt64 { sendCounter.load() }

    /// Sets the next counter to send (tests: keys near their message limits).
    func setSentCount(_ value: UInt64) { sendCounter.store(value) }

    /// True while packets may still be received on this key.
    @inline(__always)
    public func canReceive(now: UInt64) -> Bool { now &- createdAt < ProtocolLimits.rejectAfterTime }
}

/// A keypair's send counter, in a cache line of its own outside the object: the tun-reader adds to it per packet,
/// and an `Atomic` stored in the class made Swift retain and release the keypair around every add — on a reference
/// count that the other pipeline threads touch too (about 5 % of the tun-reader in a perf profile). All accesses
/// are relaxed: the counter only has to hand out each value once.
struct SendCounter: @unchecked Sendable {  // the storage is only touched through atomic operations
    fileprivate let storage: UnsafeMutablePointer<UInt64>

    /// Allocates the counter's cache line; its keypair frees it (`free()`, from Keypair's deinit).
    fileprivate init() {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)
        storage = raw.initializeMemory(as: UInt64.self, repeating: 0, count: 8)
    }

    fileprivate func free() { UnsafeMutableRawPointer(storage).deallocate() }

    @inline(__always) public func load() -> UInt64 { vf_counter_load(storage) }
    @inline(__always) public func store(_ value: UInt64) { vf_counter_store(storage, value) }
    /// Adds `count` and returns the value before.
    @inline(__always) public func fetchAdd(_ count: UInt64) -> UInt64 { vf_counter_fetch_add(storage, count) }
}

/// The three keypair slots of a peer. Guarded by the peer's lock.
public struct KeypairSlots: Sendable {
    public var previous: Keypair?
    public var current: Keypair?
    public var next: Keypair?

    public init() {}

    /// Installs a freshly derived keypair. The initiator uses it at once; the responder waits in `next`
    /// until the initiator's first packet confirms it. Returns the keypairs that were dropped (their indices
    /// must be freed).
    public mutating func install(_ keypair: Keypair) -> [Keypair] {
        var dropped: [Keypair] = []
        if keypair.isInitiator {
            if let n = next {
                // A responder session never confirmed: it becomes `previous`, the old current goes.
                if let p = previous { dropped.append(p) }
                if let c = current { dropped.append(c) }
                previous = n
                next = nil
            } else {
                if let p = previous { dropped.append(p) }
                previous = current
            }
            current = keypair
        } else {
            // As the kernel does: a new responder session also retires `previous`, so at most the current
            // session and the unconfirmed one can receive.
            if let n = next { dropped.append(n) }
            if let p = previous { dropped.append(p) }
            previous = nil
            next = keypair
        }
        return dropped
    }

    /// The first authenticated packet on `next` confirms it. Returns a dropped keypair, if any.
    public mutating func confirm(_ keypair: Keypair) -> Keypair? {
        guard let n = next, n === keypair else { return nil }
        let dropped = previous
        previous = current
        current = n
        next = nil
        return dropped
    }

    /// Removes every keypair and returns them.
    public mutating func clear() -> [Keypair] {
        let all = [previous, current, next].compactMap { $0 }
        previous = nil; current = nil; next = nil
        return all
    }

    public var all: [Keypair] { [previous, current, next].compactMap { $0 } }
}
