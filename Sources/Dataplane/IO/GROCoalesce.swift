// Coalescing decrypted packets into TUN super-packets (the receive side of the TUN offloads).
//
// A batch of inner packets becomes a list of TUN writes. Consecutive TCP segments of one flow (and, if the
// kernel took USO, UDP datagrams of one flow) are joined into one write: the first packet whole, then the
// payloads of the rest, behind a vnet header that asks the kernel to cut them up again (GSO) and to complete
// the checksum (NEEDS_CSUM). Everything else is written alone behind an all-zero vnet header.
//
// The rules are the kernel's GRO rules, so that the kernel's re-segmentation gives back exactly the packets
// that went in: every segment's headers must equal the first's except for lengths, IPv4 ID, TCP sequence
// number, checksums and a PSH on the last; segments are contiguous in sequence space and of equal payload size,
// except a smaller last one which, like a PSH, ends the group. Each packet's checksums are verified before it
// is merged, since the kernel computes fresh ones for the super-packet.
//
// Two passes over the batch. The first assigns packets to groups through a small fixed table of open flows,
// chaining members by index; a packet of a flow that cannot join that flow's open group closes it, so that a
// group never holds packets that arrived after another packet of its flow. The second walks the batch in
// arrival order and emits each group at the position of its first packet, rewriting that packet's headers.

/// A piece of a gathered write. The pointer only borrows the caller's packet buffer for one `plan`/write cycle.
public struct IOSlice: @unchecked Sendable {   // a plain address and length; the caller owns the memory
    public var base: UnsafeMutableRawPointer
    public var length: Int

    @inline(__always)
    public init(base: UnsafeMutableRawPointer, length: Int) {
        self.base = base
        self.length = length
    }
}

/// One TUN write: the vnet header, then slices[sliceStart ..< sliceStart + sliceCount] gathered.
public struct TunWrite: Sendable, Equatable {
    public var vnet: VirtioNetHeader
    public var sliceStart: Int
    public var sliceCount: Int

    @inline(__always)
    public init(vnet: VirtioNetHeader, sliceStart: Int, sliceCount: Int) {
        self.vnet = vnet
        self.sliceStart = sliceStart
        self.sliceCount = sliceCount
    }
}

public struct GROCoalescer: Sendable {
    /// Open flows at a time; when full, the oldest open group is closed to make room.
    public static let tableSize = 64

    public let maxSegments: Int
    /// The largest super-packet (IP total length), at most 65535.
    public let maxBytes: Int
    /// Coalesce UDP too (only when the TUN accepted USO4/USO6).
    public let udpEnabled: Bool

    private var flows: [OpenFlow]
    private var openCount = 0
    private var notes: [Note]

    public init(maxSegments: Int = 64, maxBytes: Int = 65535, udpEnabled: Bool, batchCapacity: Int = PacketBatch.capacity) {
        precondition(maxSegments >= 1 && maxBytes >= 1)
        self.maxSegments = maxSegments
        self.maxBytes = min(maxBytes, 65535)
        self.udpEnabled = udpEnabled
        flows = Array(repeating: OpenFlow(), count: Self.tableSize)
        notes = []
        notes.reserveCapacity(batchCapacity)
    }

    /// Plans TUN writes for `count` complete inner IP packets (packets[i], lengths[i]) in arrival order.
    /// Writes and slices are appended (the caller reuses the arrays with removeAll(keepingCapacity:)).
    ///
    /// A coalesced write's slices are the first packet whole, then the payloads of the following segments. The
    /// first packet's headers are rewritten in place: IPv4 total length and header checksum or IPv6 payload
    /// length, UDP length, PSH if the last segment had it, and the L4 checksum field set to the pseudo-header
    /// sum over the whole L4 length (NEEDS_CSUM: checksumStart = IP header length, checksumOffset 16 for TCP
    /// and 6 for UDP, headerLength = IP + L4 header, gsoSize = the first segment's payload, gsoType
    /// tcpV4/tcpV6/udpL4). Other packets become one-slice writes with an all-zero vnet header, unchanged.
    ///
    /// Within a flow the order is kept; across flows writes may come out in a different order than arrival.
    /// Allocates nothing once `writes`, `slices` and the coalescer have seen a batch this large.
    public mutating func plan(packets: UnsafePointer<UnsafeMutableRawPointer>, lengths: UnsafePointer<UInt32>,
                              count: Int, writes: inout [TunWrite], slices: inout [IOSlice]) {
        notes.removeAll(keepingCapacity: true)
        notes.reserveCapacity(count)
        openCount = 0
        for i in 0..<count {
            notes.append(Note())
            group(i, packets, lengths)
        }
        openCount = 0
        for i in 0..<count {
            switch notes[i].role {
            case .member:
                continue
            case .single:
                emitSingle(i, packets, lengths, &writes, &slices)
            case .head:
                if notes[i].next < 0 {
                    emitSingle(i, packets, lengths, &writes, &slices)
                } else {
                    emitGroup(i, packets, lengths, &writes, &slices)
                }
            }
        }
    }

    // MARK: Pass 1: grouping

    private mutating func group(_ i: Int, _ packets: UnsafePointer<UnsafeMutableRawPointer>,
                                _ lengths: UnsafePointer<UInt32>) {
        let p = UnsafeRawPointer(packets[i])
        let length = Int(lengths[i])
        let packet: Parsed
        switch parse(p, length) {
        case .other:
            return
        case .barrier(let isV4):
            // Same addresses, flow unknown (a later IPv4 fragment, IPv6 extension headers): stop every group
            // between these hosts so none of them overtakes this packet.
            var slot = 0
            while slot < openCount {
                let head = UnsafeRawPointer(packets[Int(flows[slot].head)])
                if (head.load(as: UInt8.self) >> 4 == 4) == isV4 && sameAddresses(head, p, isV4: isV4) {
                    close(slot)
                } else {
                    slot += 1
                }
            }
            return
        case .flow(let parsed):
            packet = parsed
        }

        let slot = findFlow(packet, p, packets)
        if packet.candidate, let slot, canJoin(flows[slot], packet, p, UnsafeRawPointer(packets[Int(flows[slot].head)])) {
            var flow = flows[slot]
            notes[Int(flow.tail)].next = Int32(i)
            notes[i].role = .member
            flow.tail = Int32(i)
            flow.segments += 1
            flow.bytes += Int32(packet.payload)
            flow.nextSeq = packet.seq &+ UInt32(truncatingIfNeeded: packet.payload)
            flow.lastID = packet.id
            flows[slot] = flow
            if packet.payload < Int(flow.gsoSize) || packet.flags & TCPFlag.psh != 0
                || Int(flow.segments) >= maxSegments {
                close(slot)
            }
            return
        }
        if let slot { close(slot) }
        // A new group; one that could take nothing more (PSH, or already at the limits) stays a single.
        guard packet.candidate, packet.flags & TCPFlag.psh == 0, maxSegments > 1, length < maxBytes else { return }
        if openCount == Self.tableSize { closeOldest() }
        notes[i].role = .head
        flows[openCount] = OpenFlow(hash: packet.hash, head: Int32(i), tail: Int32(i), segments: 1,
                                    bytes: Int32(length), gsoSize: Int32(packet.payload),
                                    nextSeq: packet.seq &+ UInt32(truncatingIfNeeded: packet.payload),
                                    lastID: packet.id)
        openCount += 1
    }

    /// The open flow `packet` belongs to: same hash, version, protocol, addresses and ports as its head.
    @inline(__always)
    private func findFlow(_ packet: Parsed, _ p: UnsafeRawPointer,
                          _ packets: UnsafePointer<UnsafeMutableRawPointer>) -> Int? {
        var slot = 0
        while slot < openCount {
            if flows[slot].hash == packet.hash {
                let head = UnsafeRawPointer(packets[Int(flows[slot].head)])
                if sameFlow(head, p, packet) { return slot }
            }
            slot += 1
        }
        return nil
    }

    @inline(__always)
    private func sameFlow(_ head: UnsafeRawPointer, _ p: UnsafeRawPointer, _ packet: Parsed) -> Bool {
        let headVersion = head.load(as: UInt8.self) >> 4
        guard (headVersion == 4) == packet.isV4 else { return false }
        let headIPHeader = packet.isV4 ? Int(head.load(as: UInt8.self) & 0x0f) * 4 : IPv6Field.header
        let headProto = head.load(fromByteOffset: packet.isV4 ? IPv4Field.proto : IPv6Field.nextHeader, as: UInt8.self)
        return headProto == packet.proto && sameAddresses(head, p, isV4: packet.isV4)
            && head.loadUnaligned(fromByteOffset: headIPHeader, as: UInt32.self)
                == p.loadUnaligned(fromByteOffset: packet.ipHeader, as: UInt32.self)
    }

    /// Whether `packet` may be appended to the open group `flow` whose first packet is `head`.
    @inline(__always)
    private func canJoin(_ flow: OpenFlow, _ packet: Parsed, _ p: UnsafeRawPointer, _ head: UnsafeRawPointer) -> Bool {
        guard packet.payload <= Int(flow.gsoSize), Int(flow.segments) < maxSegments,
              Int(flow.bytes) + packet.payload <= maxBytes else { return false }
        if packet.isV4 {
            // TOS, DF and TTL as the first. The ID must count up by one, as re-segmentation will make it; under
            // DF it may also stay fixed, as the kernel's GRO allows (the IDs then come back counting up, which
            // DF makes harmless).
            guard p.load(fromByteOffset: IPv4Field.tos, as: UInt8.self) == head.load(fromByteOffset: IPv4Field.tos, as: UInt8.self),
                  p.load(fromByteOffset: IPv4Field.ttl, as: UInt8.self) == head.load(fromByteOffset: IPv4Field.ttl, as: UInt8.self)
            else { return false }
            let df = loadBE16(p, IPv4Field.flagsFragment) & IPv4Field.dontFragment
            guard df == loadBE16(head, IPv4Field.flagsFragment) & IPv4Field.dontFragment else { return false }
            guard packet.id == flow.lastID &+ 1 || (df != 0 && packet.id == flow.lastID) else { return false }
        } else {
            // Version, traffic class and flow label; hop limit.
            guard p.loadUnaligned(as: UInt32.self) == head.loadUnaligned(as: UInt32.self),
                  p.load(fromByteOffset: IPv6Field.hopLimit, as: UInt8.self)
                    == head.load(fromByteOffset: IPv6Field.hopLimit, as: UInt8.self) else { return false }
        }
        guard packet.proto == IPProto.tcp else { return true }
        let l4 = p + packet.ipHeader
        let headL4 = head + packet.ipHeader   // candidates have fixed-size IP headers
        // Same ack, data offset, flags but PSH (candidates carry only ACK and maybe PSH), window, options.
        return packet.seq == flow.nextSeq
            && l4.loadUnaligned(fromByteOffset: TCPField.ack, as: UInt32.self)
                == headL4.loadUnaligned(fromByteOffset: TCPField.ack, as: UInt32.self)
            && l4.load(fromByteOffset: TCPField.dataOffset, as: UInt8.self)
                == headL4.load(fromByteOffset: TCPField.dataOffset, as: UInt8.self)
            && l4.loadUnaligned(fromByteOffset: TCPField.window, as: UInt16.self)
                == headL4.loadUnaligned(fromByteOffset: TCPField.window, as: UInt16.self)
            && bytesEqual(l4 + TCPField.minHeader, headL4 + TCPField.minHeader, packet.l4Header - TCPField.minHeader)
    }

    private mutating func close(_ slot: Int) {
        openCount -= 1
        flows[slot] = flows[openCount]
    }

    private mutating func closeOldest() {
        var oldest = 0
        for slot in 1..<openCount where flows[slot].head < flows[oldest].head { oldest = slot }
        close(oldest)
    }

    // MARK: Pass 2: writes

    @inline(__always)
    private func emitSingle(_ i: Int, _ packets: UnsafePointer<UnsafeMutableRawPointer>,
                            _ lengths: UnsafePointer<UInt32>, _ writes: inout [TunWrite], _ slices: inout [IOSlice]) {
        writes.append(TunWrite(vnet: VirtioNetHeader(), sliceStart: slices.count, sliceCount: 1))
        slices.append(IOSlice(base: packets[i], length: Int(lengths[i])))
    }

    private func emitGroup(_ first: Int, _ packets: UnsafePointer<UnsafeMutableRawPointer>,
                           _ lengths: UnsafePointer<UInt32>, _ writes: inout [TunWrite], _ slices: inout [IOSlice]) {
        let head = packets[first]
        let firstLength = Int(lengths[first])
        let isV4 = head.load(as: UInt8.self) >> 4 == 4
        let ipHeader = isV4 ? IPv4Field.minHeader : IPv6Field.header
        let proto = head.load(fromByteOffset: isV4 ? IPv4Field.proto : IPv6Field.nextHeader, as: UInt8.self)
        let isTCP = proto == IPProto.tcp
        let l4Header = isTCP
            ? Int(head.load(fromByteOffset: ipHeader + TCPField.dataOffset, as: UInt8.self) >> 4) * 4
            : UDPField.header
        let headers = ipHeader + l4Header

        let sliceStart = slices.count
        slices.append(IOSlice(base: head, length: firstLength))
        var total = firstLength
        var segments = 1
        var last = first
        var m = Int(notes[first].next)
        while m >= 0 {
            let payload = Int(lengths[m]) - headers
            slices.append(IOSlice(base: packets[m] + headers, length: payload))
            total += payload
            segments += 1
            last = m
            m = Int(notes[m].next)
        }

        // The first packet's headers now describe the whole super-packet.
        let l4 = head + ipHeader
        let l4Length = total - ipHeader
        if isV4 {
            storeBE16(head, IPv4Field.totalLength, UInt16(total))
            storeBE16(head, IPv4Field.checksum, 0)
            storeBE16(head, IPv4Field.checksum, InternetChecksum.finish(InternetChecksum.sum(head, ipHeader)))
        } else {
            storeBE16(head, IPv6Field.payloadLength, UInt16(l4Length))
        }
        let checksumOffset: Int
        let type: VirtioNetHeader.GSOType
        if isTCP {
            checksumOffset = TCPField.checksum
            type = isV4 ? .tcpV4 : .tcpV6
            let lastFlags = packets[last].load(fromByteOffset: ipHeader + TCPField.flags, as: UInt8.self)
            let flags = l4.load(fromByteOffset: TCPField.flags, as: UInt8.self) | (lastFlags & TCPFlag.psh)
            l4.storeBytes(of: flags, toByteOffset: TCPField.flags, as: UInt8.self)
        } else {
            checksumOffset = UDPField.checksum
            type = .udpL4
            storeBE16(l4, UDPField.length, UInt16(l4Length))
        }
        let pseudo = isV4
            ? InternetChecksum.pseudoHeaderV4(head, protocol: proto, length: l4Length)
            : InternetChecksum.pseudoHeaderV6(head, protocol: proto, length: l4Length)
        storeBE16(l4, checksumOffset, pseudo)

        let vnet = VirtioNetHeader(flags: VirtioNetHeader.needsChecksum, gsoType: type,
                                   headerLength: UInt16(headers), gsoSize: UInt16(firstLength - headers),
                                   checksumStart: UInt16(ipHeader), checksumOffset: UInt16(checksumOffset))
        writes.append(TunWrite(vnet: vnet, sliceStart: sliceStart, sliceCount: segments))
    }
}

// MARK: - Parsing

extension GROCoalescer {
    private enum Role: UInt8 { case single, head, member }

    /// Per packet of the batch: its role and the next member of its group (-1: none).
    private struct Note {
        var next: Int32 = -1
        var role: Role = .single
    }

    /// An open group: its first and last packet and what the next segment must continue.
    private struct OpenFlow {
        var hash: UInt64 = 0
        var head: Int32 = 0
        var tail: Int32 = 0
        var segments: Int32 = 0
        var bytes: Int32 = 0          // IP total length so far
        var gsoSize: Int32 = 0        // the first packet's payload
        var nextSeq: UInt32 = 0       // TCP: the tail's seq + payload
        var lastID: UInt16 = 0        // IPv4: the tail's ID
    }

    /// A TCP or UDP packet whose flow is known.
    private struct Parsed {
        var hash: UInt64
        var isV4: Bool
        var proto: UInt8
        var ipHeader: Int
        var l4Header: Int
        var payload: Int
        /// May be coalesced: well-formed, fixed-size IP header, not a fragment, only ACK/PSH (TCP), checksums good.
        var candidate: Bool
        var seq: UInt32
        var flags: UInt8
        var id: UInt16

        @inline(__always) var headers: Int { ipHeader + l4Header }
    }

    private enum ParseResult {
        case flow(Parsed)
        /// The flow cannot be told, but this IP version and these addresses are involved.
        case barrier(isV4: Bool)
        /// Nothing any group needs to know about (other protocols, garbage).
        case other
    }

    @inline(__always)
    private func parse(_ p: UnsafeRawPointer, _ length: Int) -> ParseResult {
        guard length >= IPv4Field.minHeader else { return .other }
        let version = p.load(as: UInt8.self) >> 4
        let isV4: Bool
        let ipHeader: Int
        let proto: UInt8
        var wellFormed: Bool
        var id: UInt16 = 0
        if version == 4 {
            isV4 = true
            ipHeader = Int(p.load(as: UInt8.self) & 0x0f) * 4
            proto = p.load(fromByteOffset: IPv4Field.proto, as: UInt8.self)
            guard ipHeader >= IPv4Field.minHeader, proto == IPProto.tcp || proto == IPProto.udp else { return .other }
            let fragment = loadBE16(p, IPv4Field.flagsFragment) & IPv4Field.fragmentMask
            if fragment & 0x1fff != 0 { return .barrier(isV4: true) }   // no L4 header here
            guard length >= ipHeader + 4 else { return .other }
            wellFormed = ipHeader == IPv4Field.minHeader && fragment == 0
                && Int(loadBE16(p, IPv4Field.totalLength)) == length
                && InternetChecksum.sum(p, IPv4Field.minHeader) == 0xffff
            id = loadBE16(p, IPv4Field.id)
        } else if version == 6 {
            guard length >= IPv6Field.header else { return .other }
            isV4 = false
            ipHeader = IPv6Field.header
            proto = p.load(fromByteOffset: IPv6Field.nextHeader, as: UInt8.self)
            guard proto == IPProto.tcp || proto == IPProto.udp else {
                return Self.isIPv6ExtensionHeader(proto) ? .barrier(isV4: false) : .other
            }
            guard length >= ipHeader + 4 else { return .other }
            wellFormed = Int(loadBE16(p, IPv6Field.payloadLength)) + IPv6Field.header == length
        } else {
            return .other
        }

        let hash = Self.flowHash(p, isV4: isV4, proto: proto, ports: p.loadUnaligned(fromByteOffset: ipHeader, as: UInt32.self))
        var parsed = Parsed(hash: hash, isV4: isV4, proto: proto, ipHeader: ipHeader, l4Header: 0, payload: 0,
                            candidate: false, seq: 0, flags: 0, id: id)
        guard wellFormed else { return .flow(parsed) }
        let l4 = p + ipHeader
        let l4Length = length - ipHeader
        if proto == IPProto.tcp {
            guard l4Length >= TCPField.minHeader else { return .flow(parsed) }
            parsed.l4Header = Int(l4.load(fromByteOffset: TCPField.dataOffset, as: UInt8.self) >> 4) * 4
            parsed.flags = l4.load(fromByteOffset: TCPField.flags, as: UInt8.self)
            parsed.seq = loadBE32(l4, TCPField.seq)
            guard parsed.l4Header >= TCPField.minHeader, parsed.l4Header < l4Length,
                  parsed.flags & ~TCPFlag.psh == TCPFlag.ack else { return .flow(parsed) }
        } else {
            guard udpEnabled, l4Length > UDPField.header, Int(loadBE16(l4, UDPField.length)) == l4Length,
                  loadBE16(l4, UDPField.checksum) != 0 else { return .flow(parsed) }
            parsed.l4Header = UDPField.header
        }
        parsed.payload = l4Length - parsed.l4Header
        let pseudo = isV4
            ? InternetChecksum.pseudoHeaderV4(p, protocol: proto, length: l4Length)
            : InternetChecksum.pseudoHeaderV6(p, protocol: proto, length: l4Length)
        parsed.candidate = InternetChecksum.combine(pseudo, InternetChecksum.sum(l4, l4Length)) == 0xffff
        return .flow(parsed)
    }

    @inline(__always)
    private static func isIPv6ExtensionHeader(_ next: UInt8) -> Bool {
        switch next {
        case 0, 43, 44, 50, 51, 60, 135, 139, 140, 253, 254: return true
        default: return false
        }
    }

    @inline(__always)
    private static func flowHash(_ p: UnsafeRawPointer, isV4: Bool, proto: UInt8, ports: UInt32) -> UInt64 {
        var h = UInt64(ports) ^ UInt64(proto) << 40 ^ (isV4 ? 0 : 1 << 48)
        if isV4 {
            h ^= p.loadUnaligned(fromByteOffset: 12, as: UInt64.self).rotatedLeft(17)
        } else {
            h ^= p.loadUnaligned(fromByteOffset: 8, as: UInt64.self).rotatedLeft(7)
            h ^= p.loadUnaligned(fromByteOffset: 16, as: UInt64.self).rotatedLeft(19)
            h ^= p.loadUnaligned(fromByteOffset: 24, as: UInt64.self).rotatedLeft(31)
            h ^= p.loadUnaligned(fromByteOffset: 32, as: UInt64.self).rotatedLeft(43)
        }
        h = (h ^ (h >> 33)) &* 0xff51_afd7_ed55_8ccd
        return h ^ (h >> 33)
    }
}

@inline(__always)
private func sameAddresses(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, isV4: Bool) -> Bool {
    isV4 ? bytesEqual(a + 12, b + 12, 8) : bytesEqual(a + 8, b + 8, 32)
}

/// Compares `count` bytes, a multiple of 4.
@inline(__always)
private func bytesEqual(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ count: Int) -> Bool {
    var i = 0
    while i + 8 <= count {
        if a.loadUnaligned(fromByteOffset: i, as: UInt64.self) != b.loadUnaligned(fromByteOffset: i, as: UInt64.self) {
            return false
        }
        i += 8
    }
    if i < count {
        return a.loadUnaligned(fromByteOffset: i, as: UInt32.self) == b.loadUnaligned(fromByteOffset: i, as: UInt32.self)
    }
    return true
}

extension UInt64 {
    @inline(__always)
    fileprivate func rotatedLeft(_ n: UInt64) -> UInt64 { self << n | self >> (64 - n) }
}
