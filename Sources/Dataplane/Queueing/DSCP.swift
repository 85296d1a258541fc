// The outer header's DS field (TOS / Traffic Class) for an encrypted packet.
//
// By default the outer DSCP is 0, as in kernel WireGuard: copying the inner DSCP would tell an observer which
// class each packet belongs to. The ECN bits are always carried out (RFC 6040 encapsulation), since congestion
// marks on the path only reach the inner flow if the outer packet is ECN-capable. `copy` exposes the inner DSCP
// for networks that prioritise by it. Handshake messages go out as AF41, like kernel WireGuard's HANDSHAKE_DSCP.

/// How the outer DSCP is chosen.
public enum DSCPMode: Sendable, Equatable {
    /// Outer DSCP 0: nothing about the inner traffic class leaks.
    case zero
    /// Outer DSCP = inner DSCP.
    case copy
}

public enum DSCP {
    /// The TOS byte of handshake messages: DSCP AF41 (34) << 2, ECN Not-ECT.
    public static let handshakeTOS: UInt8 = 0x88

    /// The outer TOS / Traffic Class byte for an inner packet whose DS field is `innerTOS`.
    @inline(__always)
    public static func outerTOS(innerTOS: UInt8, mode: DSCPMode) -> UInt8 {
        let ecn = ECN.encapsulate(inner: ECNCodepoint(rawValue: innerTOS & 3)!).rawValue
        switch mode {
        case .zero: return ecn
        case .copy: return innerTOS & 0xfc | ecn
        }
    }
}
