// Per-peer WireGuard timers as a pure state machine driven by events and a clock (tests use a fake clock).
//
// The rules, all in one place (times from ProtocolLimits):
// - dataSent: if no "new handshake" timer is pending, arm it for keepaliveTimeout + rekeyTimeout + jitter:
//   if nothing authenticated comes back by then, start a new handshake.
// - dataReceived: arm "send keepalive" for keepaliveTimeout if not pending, else remember that another
//   keepalive is needed after the pending one.
// - anyAuthenticatedPacketSent: cancel "send keepalive" (the packet carried our liveness).
// - anyAuthenticatedPacketReceived: cancel "new handshake" (the peer is alive).
// - anyAuthenticatedPacketTraversal: re-arm "persistent keepalive" if an interval is configured.
// - handshakeInitiated: arm "retransmit handshake" for rekeyTimeout + jitter.
// - handshakeComplete: cancel "retransmit handshake", reset the attempt count.
// - sessionDerived: arm "zero key material" for 3 × rejectAfterTime.
// Expiries return actions for the peer to carry out:
// - retransmit handshake: after maxTimerHandshakes + 1 retries (as the kernel counts), give up (drop staged packets, cancel the
//   keepalive, arm key zeroing if not pending); otherwise count an attempt and send a new initiation.
// - send keepalive: send one; if another was requested meanwhile, re-arm.
// - new handshake: send a new initiation.
// - zero key material: erase all keypairs and handshake state.
// - persistent keepalive: send a keepalive.
import Synchronization

public enum TimerAction: Equatable, Sendable {
    case sendInitiation(retry: Bool)
    case giveUp
    case sendKeepalive
    case zeroKeys
}

public struct PeerTimers: Sendable {
    public private(set) var retransmitHandshake: UInt64?
    public private(set) var sendKeepalive: UInt64?
    public private(set) var newHandshake: UInt64?
    public private(set) var zeroKeyMaterial: UInt64?
    public private(set) var persistentKeepalive: UInt64?
    public private(set) var handshakeAttempts = 0
    public private(set) var needAnotherKeepalive = false
    /// Seconds; 0 is off.
    public var persistentKeepaliveInterval: UInt16

    public init(persistentKeepaliveInterval: UInt16 = 0) {
        self.persistentKeepaliveInterval = persistentKeepaliveInterval
    }

    public mutating func dataSent(now: UInt64, jitter: UInt64) {
        if newHandshake == nil {
            newHandshake = now + ProtocolLimits.keepaliveTimeout + ProtocolLimits.rekeyTimeout + jitter
        }
    }

    public mutating func dataReceived(now: UInt64) {
        if sendKeepalive == nil {
            sendKeepalive = now + ProtocolLimits.keepaliveTimeout
        } else {
            needAnotherKeepalive = true
        }
    }

    public mutating func anyAuthenticatedPacketSent() { sendKeepalive = nil }

    public mutating func anyAuthenticatedPacketReceived() { newHandshake = nil }

    public mutating func anyAuthenticatedPacketTraversal(now: UInt64) {
        if persistentKeepaliveInterval > 0 {
            persistentKeepalive = now + UInt64(persistentKeepaliveInterval) * ProtocolLimits.second
        }
    }

    public mutating func handshakeInitiated(now: UInt64, jitter: UInt64) {
        retransmitHandshake = now + ProtocolLimits.rekeyTimeout + jitter
    }

    public mutating func handshakeComplete() {
        retransmitHandshake = nil
        handshakeAttempts = 0
    }

    /// A handshake started for a new reason (not a retransmission) starts a new count of attempts.
    public mutating func resetAttempts() { handshakeAttempts = 0 }

    public mutating func sessionDerived(now: UInt64) {
        zeroKeyMaterial = now + ProtocolLimits.zeroKeysAfter
    }

    /// Cancels everything (device down, peer removed).
    public mutating func stop() {
        retransmitHandshake = nil; sendKeepalive = nil; newHandshake = nil
        zeroKeyMaterial = nil; persistentKeepalive = nil
        handshakeAttempts = 0; needAnotherKeepalive = false
    }

    /// The earliest pending deadline, to size the control thread's sleep.
    /// (Read every time the control thread goes to sleep, so it builds no array.)
    public var nextDeadline: UInt64? {
        Self.earlier(Self.earlier(Self.earlier(Self.earlier(retransmitHandshake, sendKeepalive), newHandshake),
                                  zeroKeyMaterial), persistentKeepalive)
    }

    /// The earlier of two optional deadlines (nil: not pending).
    @inline(__always) private static func earlier(_ a: UInt64?, _ b: UInt64?) -> UInt64? {
        guard let a else { return b }
        guard let b else { return a }
        return min(a, b)
    }

    /// Fires every timer due at `now` and returns what the peer must do, in a fixed order.
    public mutating func expire(now: UInt64) -> [TimerAction] {
        var actions: [TimerAction] = []
        if let t = retransmitHandshake, t <= now {
            retransmitHandshake = nil
            if handshakeAttempts > ProtocolLimits.maxTimerHandshakes {
                sendKeepalive = nil
                if zeroKeyMaterial == nil { zeroKeyMaterial = now + ProtocolLimits.zeroKeysAfter }
                handshakeAttempts = 0
                actions.append(.giveUp)
            } else {
                handshakeAttempts += 1
                actions.append(.sendInitiation(retry: true))
            }
        }
        if let t = sendKeepalive, t <= now {
            sendKeepalive = nil
            actions.append(.sendKeepalive)
            if needAnotherKeepalive {
                needAnotherKeepalive = false
                sendKeepalive = now + ProtocolLimits.keepaliveTimeout
            }
        }
        if let t = newHandshake, t <= now {
            newHandshake = nil
            actions.append(.sendInitiation(retry: false))
        }
        if let t = zeroKeyMaterial, t <= now {
            zeroKeyMaterial = nil
            actions.append(.zeroKeys)
        }
        if let t = persistentKeepalive, t <= now {
            persistentKeepalive = nil
            if persistentKeepaliveInterval > 0 && !actions.contains(.sendKeepalive) {
                actions.append(.sendKeepalive)
            }
        }
        return actions
    }
}

/// Jitter for the handshake timers, 0 ..< 333 ms in whole milliseconds. It only has to spread handshakes out, not be
/// secret, so it comes from a splitmix64 sequence with a random seed rather than from getrandom(2): the send path
/// draws it once per batch sent (dataSent), and a system call per batch showed in profiles. Any thread may draw.
public final class TimerJitter: Sendable {
    private let state: Atomic<UInt64>

    public init(seed: UInt64) { state = Atomic(seed) }

    public func next() -> UInt64 {
        var z = state.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return z % (ProtocolLimits.rekeyTimeoutJitterMax / ProtocolLimits.millisecond) * ProtocolLimits.millisecond
    }
}
