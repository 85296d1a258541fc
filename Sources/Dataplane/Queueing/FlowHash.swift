// The flow hash that picks a packet's FQ-CoDel queue, computed on the inner packet before encryption (the kernel's
// own hash cannot see inside our UDP and would put every tunnelled flow in one bucket, RFC 8290 §6.2).
//
// The flow key is copied into a small stack buffer and hashed once with SipHash-2-4 under a random 16-byte key,
// so a sender cannot aim many flows at one queue:
//
//   byte 0      IP version (4 or 6; 0 when there is no first byte, otherwise the version nibble as found)
//   byte 1      protocol: IPv4's, or IPv6's after the extension headers
//   byte 2      what bytes 4–7 hold: none, ports, ICMP echo identifier, ESP SPI or IPv6 flow label
//   bytes 4–7   source and destination port (TCP, UDP, UDP-Lite, SCTP, DCCP), the echo identifier, or the SPI
//   bytes 8–    source and destination address (IPv4: key is 16 bytes; IPv6: 40)
//
// Choices:
// - Fragments. Only the first fragment carries the ports, so every fragment (IPv4 MF or offset ≠ 0, an IPv6
//   fragment header with M or offset ≠ 0) hashes on addresses and protocol only, and all fragments of a flow
//   share a queue. An IPv6 atomic fragment (offset 0, no M, RFC 6946) is walked past.
// - IPv6 flow label. Unlike Linux's dissector, a label does not stop the hash at the IP header: the ports always
//   count. The label is used only when there is no L4 identifier (fragments, opaque protocols), since Linux
//   picks a new label for a TCP socket when it rethinks its route, which would move a flow between queues.
// - Extension headers: hop-by-hop, routing, destination options and fragment, at most
//   `maxIPv6ExtensionHeaders` of them; beyond that, or past the end of the packet, the hash covers what it has.
// - Truncated or malformed packets hash on the fields that lie wholly inside `length`; nothing past it is read.
// - The hash is not symmetric: one direction is queued here, so A→B and B→A need not meet.
import Crypto

public struct FlowHasher: Sendable {
    /// IPv6 extension headers walked before giving up on finding the transport header.
    public static let maxIPv6ExtensionHeaders = 8

    /// The 16-byte SipHash key, as raw bytes.
    private let key: (UInt64, UInt64)

    /// `key`: 16 random bytes, e.g. `SecureRandom.bytes(16)`.
    public init(key: [UInt8]) {
        precondition(key.count == SipHash.keySize, "the flow hash key must be 16 bytes")
        var k: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &k) { $0.copyBytes(from: key) }
        self.key = k
    }

    /// The flow hash of the IP packet at `packet`, reading only `packet[0..<length]`.
    @inline(__always)
    public func hash(packet: UnsafeRawPointer, length: Int) -> UInt32 {
        var flow: (UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0)   // FlowKey.size bytes
        var k = key
        let h = withUnsafeMutableBytes(of: &flow) { flow in
            let count = FlowKey.extract(packet, length, into: flow.baseAddress!)
            return withUnsafeBytes(of: &k) { SipHash.hash(key: $0.baseAddress!, data: flow.baseAddress!, length: count) }
        }
        return UInt32(truncatingIfNeeded: h ^ (h >> 32))
    }

    /// The same hash, reusing the last one in `memo` when the flow key is the same (a super-packet's segments,
    /// a burst of one flow read together): the key is still extracted and compared whole, only SipHash is skipped.
    @inline(__always)
    public func hash(packet: UnsafeRawPointer, length: Int, memo: inout FlowHashMemo) -> UInt32 {
        var flow: (UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0)   // FlowKey.size bytes
        let count = withUnsafeMutableBytes(of: &flow) { FlowKey.extract(packet, length, into: $0.baseAddress!) }
        if memo.valid && memo.count == count && memo.key == flow { return memo.hash }
        var k = key
        let h = withUnsafeBytes(of: &flow) { flow in
            withUnsafeBytes(of: &k) { SipHash.hash(key: $0.baseAddress!, data: flow.baseAddress!, length: count) }
        }
        let hash = UInt32(truncatingIfNeeded: h ^ (h >> 32))
        memo = FlowHashMemo(valid: true, count: count, key: flow, hash: hash)
        return hash
    }

    /// Maps a 32-bit hash onto 0..<n without a division: (hash · n) >> 32, as Linux's reciprocal_scale.
    @inline(__always)
    public static func reciprocalScale(_ hash: UInt32, _ n: UInt32) -> UInt32 {
        UInt32(truncatingIfNeeded: (UInt64(hash) &* UInt64(n)) >> 32)
    }
}

/// The flow key layout (see the top of the file) and its extraction.
/// The last flow key hashed and its hash (FlowHasher.hash(packet:length:memo:)); start with an empty one per batch.
public struct FlowHashMemo: Sendable {
    var valid = false
    var count = 0
    var key: (UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0)
    var hash: UInt32 = 0

    public init() {}

    init(valid: Bool, count: Int, key: (UInt64, UInt64, UInt64, UInt64, UInt64), hash: UInt32) {
        self.valid = valid; self.count = count; self.key = key; self.hash = hash
    }
}

enum FlowKey {
    static let version = 0
    static let proto = 1
    static let kind = 2
    static let identifier = 4
    static let addresses = 8
    static let size = 40

    /// What bytes 4–7 hold.
    enum Kind {
        static let none: UInt8 = 0
        static let ports: UInt8 = 1
        static let echoIdentifier: UInt8 = 2
        static let spi: UInt8 = 3
        static let flowLabel: UInt8 = 4
    }

    @inline(__always)
    static func byte(_ p: UnsafeRawPointer, _ offset: Int) -> UInt8 { p.load(fromByteOffset: offset, as: UInt8.self) }

    @inline(__always)
    static func put(_ out: UnsafeMutableRawPointer, _ offset: Int, _ value: UInt8) {
        out.storeBytes(of: value, toByteOffset: offset, as: UInt8.self)
    }

    /// Fills `out` (FlowKey.size zeroed bytes) from the packet and returns how many bytes of it to hash.
    @inline(__always)
    static func extract(_ p: UnsafeRawPointer, _ length: Int, into out: UnsafeMutableRawPointer) -> Int {
        guard length >= 1 else { return addresses }
        let version = byte(p, 0) >> 4
        put(out, FlowKey.version, version)
        switch version {
        case 4: extractV4(p, length, out); return addresses + 8
        case 6: extractV6(p, length, out); return addresses + 32
        default: return addresses
        }
    }

    @inline(__always)
    static func extractV4(_ p: UnsafeRawPointer, _ length: Int, _ out: UnsafeMutableRawPointer) {
        guard length >= IPv4Field.minHeader else {
            // Truncated: whatever whole fields there are.
            if length > IPv4Field.proto { put(out, proto, byte(p, IPv4Field.proto)) }
            if length >= IPv4Field.source + 4 { (out + addresses).copyMemory(from: p + IPv4Field.source, byteCount: 4) }
            return
        }
        let protocolNumber = byte(p, IPv4Field.proto)
        put(out, proto, protocolNumber)
        (out + addresses).copyMemory(from: p + IPv4Field.source, byteCount: 8)
        let headerLength = Int(byte(p, 0) & 0x0f) * 4
        guard loadBE16(p, IPv4Field.flagsFragment) & IPv4Field.fragmentMask == 0,
              headerLength >= IPv4Field.minHeader, headerLength <= length else { return }
        _ = transport(protocolNumber, p + headerLength, length - headerLength, out)
    }

    @inline(__always)
    static func extractV6(_ p: UnsafeRawPointer, _ length: Int, _ out: UnsafeMutableRawPointer) {
        guard length >= IPv6Field.header else {
            if length > IPv6Field.nextHeader { put(out, proto, byte(p, IPv6Field.nextHeader)) }
            if length >= IPv6Field.source + 16 { (out + addresses).copyMemory(from: p + IPv6Field.source, byteCount: 16) }
            return
        }
        (out + addresses).copyMemory(from: p + IPv6Field.source, byteCount: 32)
        var next = byte(p, IPv6Field.nextHeader)
        var offset = IPv6Field.header
        var fragment = false
        var walked = 0
        walk: while walked < FlowHasher.maxIPv6ExtensionHeaders {
            switch next {
            case IPv6Extension.hopByHop, IPv6Extension.routing, IPv6Extension.destinationOptions:
                guard length - offset >= 2 else { break walk }
                next = byte(p, offset)
                offset += (Int(byte(p, offset + IPv6Extension.lengthField)) + 1) * 8
            case IPv6Extension.fragment:
                guard length - offset >= IPv6Extension.fragmentHeader else { break walk }
                next = byte(p, offset)
                if loadBE16(p, offset + IPv6Extension.fragmentOffsetFlags) & IPv6Extension.fragmentMask != 0 {
                    fragment = true
                    break walk
                }
                offset += IPv6Extension.fragmentHeader
            default:
                break walk
            }
            walked += 1
        }
        put(out, proto, next)
        if !fragment && offset <= length && transport(next, p + offset, length - offset, out) { return }
        let label = loadBE32(p, 0) & IPv6Field.flowLabelMask
        if label != 0 {
            put(out, kind, Kind.flowLabel)
            out.storeBytes(of: label.bigEndian, toByteOffset: identifier, as: UInt32.self)
        }
    }

    /// Copies the transport identifier of protocol `proto` from the L4 header at `l4` (`available` bytes) into
    /// bytes 4–7; false if the protocol has none or its header is cut short.
    @inline(__always)
    static func transport(_ proto: UInt8, _ l4: UnsafeRawPointer, _ available: Int,
                          _ out: UnsafeMutableRawPointer) -> Bool {
        switch proto {
        case IPProto.tcp, IPProto.udp, IPProto.udpLite, IPProto.sctp, IPProto.dccp:
            guard available >= 4 else { return false }
            put(out, kind, Kind.ports)
            (out + identifier).copyMemory(from: l4, byteCount: 4)
            return true
        case IPProto.esp:
            guard available >= 4 else { return false }
            put(out, kind, Kind.spi)
            (out + identifier).copyMemory(from: l4, byteCount: 4)
            return true
        case IPProto.icmp, IPProto.icmpv6:
            // Echo request/reply: type, code, checksum, identifier, sequence.
            guard available >= 6 else { return false }
            let type = byte(l4, 0)
            let echo = proto == IPProto.icmp ? (type == 0 || type == 8) : (type == 128 || type == 129)
            guard echo else { return false }
            put(out, kind, Kind.echoIdentifier)
            (out + identifier).copyMemory(from: l4 + 4, byteCount: 2)
            return true
        default:
            return false
        }
    }
}
