// Explicit Congestion Notification through the tunnel (RFC 3168 codepoints, RFC 6040 tunnel rules), and reading
// and rewriting the ECN bits of inner IP packets. See shared/reference/ecn.md.
//
// Send: the outer header gets encapsulate(inner ECN), which is a plain copy (RFC 6040 §4.1 normal mode, CE
// included; Linux instead turns CE into ECT(0), the older RFC 3168 full-functionality rule).
// Receive: decapsulate(inner:, outer:) combines the two as RFC 6040 §4.2 Figure 4 says, and the result is written
// back into the inner packet, or the packet is dropped (inner Not-ECT under an outer CE: the congestion signal
// cannot be passed on, so the loss is the signal). Kernel WireGuard ignores that drop; we honour it.
// The queue marks CE with markCE instead of dropping when the packet is ECN-capable.
//
// The DS field is the IPv4 TOS byte (offset 1) or the IPv6 Traffic Class, which straddles bytes 0 and 1 (after the
// 4-bit version). DSCP is its upper 6 bits, ECN the lower 2, so in IPv6 the ECN bits are bits 5–4 of byte 1.
// Changing IPv4's TOS updates the header checksum incrementally (RFC 1624); IPv6 has no header checksum.

/// The two ECN bits of the DS field (RFC 3168 §5).
public enum ECNCodepoint: UInt8, Sendable, CaseIterable {
    case notECT = 0
    case ect1 = 1
    case ect0 = 2
    case ce = 3
}

public enum ECN {
    /// The egress's warning for a combination that no compliant ingress produces (RFC 6040 §4.2): worth a
    /// rate-limited log line.
    public enum Anomaly: Sendable, Equatable {
        /// "(!!!)": currently unused and always potentially dangerous.
        case dangerous
        /// "(!)": possibly dangerous.
        case possiblyDangerous
    }

    /// What to do with a decapsulated inner packet.
    public enum DecapResult: Sendable, Equatable {
        /// Forward with this inner ECN codepoint.
        case forward(ECNCodepoint, anomaly: Anomaly?)
        /// Drop: the outer CE cannot be carried by a Not-ECT inner packet.
        case drop(Anomaly)
    }

    /// The outer ECN field for an inner packet's codepoint: RFC 6040 normal mode copies all four, CE included.
    @inline(__always)
    public static func encapsulate(inner: ECNCodepoint) -> ECNCodepoint { inner }

    /// RFC 6040 §4.2 Figure 4. Inner Not-ECT keeps Not-ECT (dropped under an outer CE); otherwise the more severe
    /// of the two wins, ranked CE > ECT(1) > ECT(0).
    @inline(__always)
    public static func decapsulate(inner: ECNCodepoint, outer: ECNCodepoint) -> DecapResult {
        switch (inner, outer) {
        case (.notECT, .notECT): return .forward(.notECT, anomaly: nil)
        case (.notECT, .ect0), (.notECT, .ect1): return .forward(.notECT, anomaly: .dangerous)
        case (.notECT, .ce): return .drop(.dangerous)

        case (.ect0, .notECT), (.ect0, .ect0): return .forward(.ect0, anomaly: nil)
        case (.ect0, .ect1): return .forward(.ect1, anomaly: nil)
        case (.ect0, .ce): return .forward(.ce, anomaly: nil)

        case (.ect1, .notECT), (.ect1, .ect1): return .forward(.ect1, anomaly: nil)
        case (.ect1, .ect0): return .forward(.ect1, anomaly: .possiblyDangerous)
        case (.ect1, .ce): return .forward(.ce, anomaly: nil)

        case (.ce, .ect1): return .forward(.ce, anomaly: .dangerous)
        case (.ce, _): return .forward(.ce, anomaly: nil)
        }
    }

    /// Applies decapsulation to an inner IP packet given the outer header's TOS / Traffic Class: writes the
    /// resulting codepoint into the packet when forwarding. A packet too short or not IPv4/IPv6 is forwarded
    /// untouched as Not-ECT with no anomaly (routing drops it later).
    @inline(__always)
    public static func decapsulate(packet: UnsafeMutableRawPointer, length: Int, outerTOS: UInt8) -> DecapResult {
        guard let inner = readECN(packet: packet, length: length) else { return .forward(.notECT, anomaly: nil) }
        let result = decapsulate(inner: inner, outer: ECNCodepoint(rawValue: outerTOS & 3)!)
        if case .forward(let codepoint, _) = result, codepoint != inner {
            _ = setECN(packet: packet, length: length, to: codepoint)
        }
        return result
    }

    // MARK: Inner packet fields

    /// The DS field (IPv4 TOS or IPv6 Traffic Class), or nil if the packet is too short for its IP header or is
    /// neither IPv4 nor IPv6.
    @inline(__always)
    public static func readTOS(packet p: UnsafeRawPointer, length: Int) -> UInt8? {
        guard length >= 2 else { return nil }
        let b0 = p.load(as: UInt8.self), b1 = p.load(fromByteOffset: 1, as: UInt8.self)
        switch b0 >> 4 {
        case 4 where length >= IPv4Field.minHeader: return b1
        case 6 where length >= IPv6Field.header: return b0 << 4 | b1 >> 4
        default: return nil
        }
    }

    @inline(__always)
    public static func readECN(packet p: UnsafeRawPointer, length: Int) -> ECNCodepoint? {
        guard let tos = readTOS(packet: p, length: length) else { return nil }
        return ECNCodepoint(rawValue: tos & 3)!
    }

    /// The 6-bit DSCP (RFC 2474).
    @inline(__always)
    public static func readDSCP(packet p: UnsafeRawPointer, length: Int) -> UInt8? {
        guard let tos = readTOS(packet: p, length: length) else { return nil }
        return tos >> 2
    }

    /// Sets the ECN bits, leaving the DSCP alone; for IPv4 the header checksum is updated to match. Returns false
    /// (and writes nothing) if the packet is not a complete IPv4/IPv6 header.
    @inline(__always)
    @discardableResult
    public static func setECN(packet p: UnsafeMutableRawPointer, length: Int, to codepoint: ECNCodepoint) -> Bool {
        guard length >= 2 else { return false }
        let b1 = p.load(fromByteOffset: 1, as: UInt8.self)
        switch p.load(as: UInt8.self) >> 4 {
        case 4 where length >= IPv4Field.minHeader:
            let newTOS = b1 & 0xfc | codepoint.rawValue
            guard newTOS != b1 else { return true }
            // Version/IHL and TOS form the first 16-bit word of the header.
            let oldWord = loadBE16(p, 0)
            let newWord = oldWord & 0xff00 | UInt16(newTOS)
            p.storeBytes(of: newTOS, toByteOffset: IPv4Field.tos, as: UInt8.self)
            let checksum = loadBE16(p, IPv4Field.checksum)
            storeBE16(p, IPv4Field.checksum, InternetChecksum.update(checksum, old: oldWord, new: newWord))
            return true
        case 6 where length >= IPv6Field.header:
            // Traffic class bits 1–0 are bits 5–4 of byte 1; its low nibble holds the top of the flow label.
            p.storeBytes(of: b1 & 0xcf | codepoint.rawValue << 4, toByteOffset: 1, as: UInt8.self)
            return true
        default:
            return false
        }
    }

    /// Marks congestion: true if the packet is now CE (or already was). False for a Not-ECT packet (and for
    /// anything that is not a complete IP header), which is left unchanged: the caller drops it instead.
    @inline(__always)
    public static func markCE(packet p: UnsafeMutableRawPointer, length: Int) -> Bool {
        switch readECN(packet: p, length: length) {
        case nil, .notECT?: return false
        case .ce?: return true
        case .ect0?, .ect1?: return setECN(packet: p, length: length, to: .ce)
        }
    }
}
