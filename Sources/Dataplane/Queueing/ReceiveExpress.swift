// The receive side's express lane: which small decrypted packets may be written to the TUN ahead of the bulk
// batches still on their way through the crypto pool (Pipeline/ReceiveExpressLane.swift runs it).
//
// A packet may overtake packets of other flows (fq_codel reorders flows on the send side anyway), but the
// udp-reader cannot see the inner flow of a datagram before it is opened, so it cannot know whether a larger
// packet of the same flow is among the thousands still in flight. Only packets whose meaning does not depend on
// their place in their flow may go ahead (ExpressRule):
// - ICMP and ICMPv6 messages (echo requests and replies, errors, neighbour discovery): each stands alone.
// - TCP segments without data, FIN or RST (pure acknowledgements, SYN, SYN-ACK): no byte of the stream moves.
//   An acknowledgement that overtakes a data segment of its own connection leaves the data's older
//   acknowledgement field to be ignored as old, as any reordered ACK is; the data is taken as usual.
// Everything else stays in order: TCP data, FIN and RST (moved ahead they would look like loss: duplicate
// ACKs, spurious retransmits), UDP and other protocols (a small datagram could overtake a large one of its own
// flow), fragments and IPv6 packets with extension headers.
//
// Among themselves, a flow's small packets keep their order (ExpressFlowTable): per flow bucket the table
// remembers the bulk batch that carried the flow's last small packet that stayed behind, and a candidate may go
// ahead only once that batch has been delivered, and only if no small datagram went to the pool unchecked since
// (more than a batch's share of them; then nothing is known). Colliding flows share a bucket, which can only
// keep a packet in order that could have gone ahead.

/// Whether a small decrypted packet may go ahead of the bulk in flight.
public enum ExpressVerdict: Equatable, Sendable {
    /// Must stay in order behind the packets in flight.
    case inOrder
    /// May go ahead if nothing of its flow that was checked is still in flight (ExpressFlowTable).
    case candidate
}

public enum ExpressRule {
    /// Largest datagram (outer UDP payload) the udp-reader opens a copy of: the transport header, an inner
    /// packet of up to 256 bytes after padding, and the tag. Pings and TCP acknowledgements (with SACK and
    /// timestamp options, over IPv6) fit; bulk traffic's full-size packets do not.
    public static let maxDatagram = 16 + 256 + 16

    /// Whether the decrypted inner packet `p[0..<length]` (padding included; the IP header's own length is
    /// used) may overtake. Anything malformed stays in order (the tun-writer counts and drops it there).
    public static func verdict(_ p: UnsafeRawPointer, _ length: Int) -> ExpressVerdict {
        guard length >= 1 else { return .inOrder }
        let version = p.load(as: UInt8.self) >> 4
        let proto: UInt8
        let l4: Int
        let total: Int
        if version == 4 {
            guard length >= IPv4Field.minHeader else { return .inOrder }
            let ihl = Int(p.load(as: UInt8.self) & 0x0f) * 4
            total = Int(loadBE16(p, IPv4Field.totalLength))
            guard ihl >= IPv4Field.minHeader, total >= ihl, total <= length,
                  loadBE16(p, IPv4Field.flagsFragment) & IPv4Field.fragmentMask == 0 else { return .inOrder }
            proto = p.load(fromByteOffset: IPv4Field.proto, as: UInt8.self)
            l4 = ihl
        } else if version == 6 {
            guard length >= IPv6Field.header else { return .inOrder }
            total = Int(loadBE16(p, IPv6Field.payloadLength)) + IPv6Field.header
            guard total <= length else { return .inOrder }
            proto = p.load(fromByteOffset: IPv6Field.nextHeader, as: UInt8.self)
            switch proto {
            case IPv6Extension.hopByHop, IPv6Extension.routing, IPv6Extension.fragment,
                 IPv6Extension.destinationOptions, IPv6Extension.authentication, IPv6Extension.mobility,
                 IPv6Extension.hip, IPv6Extension.shim6, IPv6Extension.experimental1, IPv6Extension.experimental2:
                return .inOrder
            default:
                break
            }
            l4 = IPv6Field.header
        } else {
            return .inOrder
        }
        if proto == IPProto.icmp || proto == IPProto.icmpv6 { return .candidate }
        guard proto == IPProto.tcp else { return .inOrder }
        guard total - l4 >= TCPField.minHeader else { return .inOrder }
        let headerLength = Int(p.load(fromByteOffset: l4 + TCPField.dataOffset, as: UInt8.self) >> 4) * 4
        guard headerLength >= TCPField.minHeader, l4 + headerLength <= total else { return .inOrder }
        let flags = p.load(fromByteOffset: l4 + TCPField.flags, as: UInt8.self)
        return l4 + headerLength == total && flags & (TCPFlag.fin | TCPFlag.rst) == 0 ? .candidate : .inOrder
    }
}

/// Which small packets are still in flight, per flow bucket. Used under the device's delivery lock: by the
/// udp-reader when it decides, by the tun-writer when it has delivered bulk batches.
public struct ExpressFlowTable: Sendable {
    public static let buckets = 1024

    /// Per bucket: the number of the bulk batch that carried the flow's last checked packet (0: none).
    private var pending: [UInt64]
    /// Bulk batches delivered so far (the tun-writer delivers them in the order they were numbered, from 1).
    public private(set) var delivered: UInt64 = 0
    /// The last batch that carried a small datagram the udp-reader did not open a copy of.
    private var unchecked: UInt64 = 0

    public init() {
        pending = [UInt64](repeating: 0, count: Self.buckets)
    }

    @inline(__always) static func bucket(_ hash: UInt32) -> Int {
        Int(FlowHasher.reciprocalScale(hash, UInt32(buckets)))
    }

    /// Whether a candidate of flow `hash` may overtake now; if not, it stays in bulk batch `batch`, which
    /// is remembered for the flow.
    public mutating func admit(hash: UInt32, batch: UInt64) -> Bool {
        let b = Self.bucket(hash)
        if pending[b] <= delivered && unchecked <= delivered { return true }
        pending[b] = batch
        return false
    }

    /// A checked packet of flow `hash` that must stay in order goes in bulk batch `batch`.
    public mutating func keepInOrder(hash: UInt32, batch: UInt64) { pending[Self.bucket(hash)] = batch }

    /// Bulk batch `batch` carries small datagrams that were not checked (their flows are unknown).
    public mutating func noteUnchecked(batch: UInt64) { unchecked = batch }

    /// `count` more bulk batches were delivered.
    @inline(__always) public mutating func noteDelivered(_ count: Int) { delivered += UInt64(count) }
}
