// A configured peer: its keys, endpoint, keypairs, timers, staged packets and statistics.
import Crypto
import Synchronization

public final class Peer: @unchecked Sendable {  // fields marked "lock" are guarded by `lock`; "control" ones belong to the control thread
    public let id: Int32
    public let keys: PeerKeys
    public var publicKey: PublicKey { keys.remoteStatic }
    public let lock = ConditionLock()

    // lock
    public var endpoint: Endpoint?
    public var keypairs = KeypairSlots()
    public var timers: PeerTimers
    /// Packets waiting for a session, copied out of the pipeline (bounded by maxStagedPackets).
    public var staged: [[UInt8]] = []
    /// Set when the receive side sent the last-minute rekey for the current key.
    public var sentLastMinuteHandshake = false

    // control
    public var handshake = Handshake()
    public var cookies = CookieGenerator()
    public var lastSentHandshake: UInt64?

    /// Set by data-path threads when a handshake should start; the control thread clears it.
    public let handshakeWanted = Atomic<Bool>(false)
    public let rxBytes = Atomic<UInt64>(0)
    public let txBytes = Atomic<UInt64>(0)
    /// Drops by reason, ECN marks, queue gauges and sojourn times of this peer (PeerStats.swift).
    public let stats = PeerStats()
    /// Wall-clock nanoseconds of the last completed handshake (0: never).
    public let lastHandshakeRealtime = Atomic<UInt64>(0)

    public init(id: Int32, keys: PeerKeys, endpoint: Endpoint?, persistentKeepalive: UInt16) {
        self.id = id
        self.keys = keys
        self.endpoint = endpoint
        self.timers = PeerTimers(persistentKeepaliveInterval: persistentKeepalive)
    }

    /// A short name for logs: the first characters of the base64 public key.
    public var shortName: String { "peer(\(String(publicKey.base64.prefix(8)))…)" }

    /// The keypair to send with, if it may still send at `now`. Caller holds `lock`.
    @inline(__always) public func sendingKeypair(now: UInt64) -> Keypair? {
        guard let k = keypairs.current, now &- k.createdAt < ProtocolLimits.rejectAfterTime,
              k.sentCount < ProtocolLimits.rejectAfterMessages else { return nil }
        return k
    }

    /// Copies a packet into the staging queue, dropping the oldest at the bound. Caller holds `lock`.
    /// Returns true if an older packet had to be dropped.
    public func stage(_ p: UnsafeRawPointer, _ length: Int) -> Bool {
        var overflow = false
        if staged.count >= ProtocolLimits.maxStagedPackets {
            staged.removeFirst()
            overflow = true
        }
        staged.append(Array(UnsafeRawBufferPointer(start: p, count: length)))
        return overflow
    }
}

/// Random 32-bit session indices mapped to the handshake or keypair they name.
public final class IndexTable: @unchecked Sendable {  // the dictionary is only touched under `lock`
    public enum Entry {
        case handshake(peerID: Int32)
        case keypair(Keypair)
    }

    // Only under `lock`, which already excludes overlapping access: no dynamic exclusivity check per lookup.
    @exclusivity(unchecked) private var entries: [UInt32: Entry] = [:]
    public let lock = ConditionLock()

    public init() {}

    /// A fresh random index for a handshake of `peerID`.
    public func newHandshakeIndex(peerID: Int32) -> UInt32 {
        lock.withLock {
            while true {
                let i = SecureRandom.uint32()
                if entries[i] == nil {
                    entries[i] = .handshake(peerID: peerID)
                    return i
                }
            }
        }
    }

    public func promote(_ keypair: Keypair) { lock.withLock { entries[keypair.localIndex] = .keypair(keypair) } }

    public func remove(_ index: UInt32) { _ = lock.withLock { entries.removeValue(forKey: index) } }

    public func lookup(_ index: UInt32) -> Entry? { lock.withLock { entries[index] } }

    /// Looks up many indices under one lock acquisition. Caller holds `lock`.
    @inline(__always) public func lookupLocked(_ index: UInt32) -> Entry? { entries[index] }

    public var count: Int { lock.withLock { entries.count } }
}
