// Splitting what a TUN with IFF_VNET_HDR hands us into packets that fit the tunnel.
//
// A read returns a virtio_net_hdr and one IP packet. Without GSO the packet is whole, but its L4 checksum may be
// left for us (NEEDS_CSUM). With GSO (TSO4/TSO6/USO) it is a "super-packet" of up to 64 KB: one IP + L4 header
// and a payload to cut into gsoSize pieces, each getting its own copy of the headers with lengths, IPv4 ID, TCP
// sequence number and flags, and checksums made right.
//
// Nothing in the vnet header is trusted on its own: the IP and L4 header lengths come from the packet, and every
// length is checked against the bytes we actually have. The vnet hdr_len is ignored (the kernel fills it with
// its linear header size, a hint at best).

/// Why a packet from the TUN was dropped; each reason is a separate counter.
public enum OffloadDrop: Error, Equatable, Sendable {
    /// The vnet header itself is unusable: unknown flag bits, the ECN GSO bit, GSO without NEEDS_CSUM.
    case badHeader
    /// A GSO type we did not negotiate (UFO) or do not know.
    case unsupportedGSOType
    /// The IP header contradicts itself or the GSO type: version, IHL, lengths, fragment, protocol,
    /// IPv6 extension headers before the L4 header.
    case badIPHeader
    /// The packet is shorter than its headers say.
    case truncated
    /// The TCP data offset is below 5 words or runs past the packet.
    case badL4Header
    /// gsoSize is zero.
    case badGSOSize
    /// More segments than the caller has outputs for.
    case tooManySegments
    /// NEEDS_CSUM points outside the packet, or (with GSO) not at the L4 header's checksum field.
    case checksumOutOfBounds
    /// A segment does not fit an output buffer.
    case outputTooSmall
}

public enum GSOSplit {
    /// Splits `packet` (the bytes after the vnet header, `length` bytes) as `header` says into segments written
    /// to outputs[i] (each with room for `capacity` bytes), their lengths to `outLengths`; at most `maxSegments`.
    ///
    /// - none: one output, a copy, with the checksum completed if NEEDS_CSUM is set.
    /// - tcpV4/tcpV6: IP + TCP headers + up to gsoSize payload per segment; IPv4 total length, ID (+1 per
    ///   segment) and header checksum, IPv6 payload length; sequence number advanced by the payload offset;
    ///   FIN and PSH on the last segment only, CWR on the first only; a full TCP checksum per segment.
    /// - udpL4: IP + UDP headers + up to gsoSize payload; UDP length, full checksum (0 sent as 0xffff), IPv4 ID.
    ///
    /// outputs[0] may be `packet` itself: the first segment is then built in place (segments are written from
    /// the last to the first, so the original headers are read before they change). No other output may
    /// overlap the packet.
    public static func split(header: VirtioNetHeader, packet: UnsafeMutableRawPointer, length: Int,
                             outputs: UnsafePointer<UnsafeMutableRawPointer>, capacity: Int,
                             outLengths: UnsafeMutablePointer<UInt32>, maxSegments: Int) -> Result<Int, OffloadDrop> {
        guard header.flags & ~(VirtioNetHeader.needsChecksum | VirtioNetHeader.dataValid) == 0,
              header.gsoType & 0x80 == 0 else { return .failure(.badHeader) }
        guard maxSegments >= 1 else { return .failure(.tooManySegments) }
        switch header.gso {
        case .none?:
            return copyCompletingChecksum(header: header, packet: packet, length: length, output: outputs[0],
                                          capacity: capacity, outLength: outLengths)
        case .tcpV4?, .tcpV6?, .udpL4?:
            return segment(header: header, packet: packet, length: length, outputs: outputs, capacity: capacity,
                           outLengths: outLengths, maxSegments: maxSegments)
        case .udp?, nil:
            return .failure(.unsupportedGSOType)
        }
    }

    private static func copyCompletingChecksum(header: VirtioNetHeader, packet: UnsafeMutableRawPointer,
                                               length: Int, output: UnsafeMutableRawPointer, capacity: Int,
                                               outLength: UnsafeMutablePointer<UInt32>) -> Result<Int, OffloadDrop> {
        guard length > 0 else { return .failure(.truncated) }
        guard length <= capacity else { return .failure(.outputTooSmall) }
        let completes = header.flags & VirtioNetHeader.needsChecksum != 0
        let start = Int(header.checksumStart)
        let field = start + Int(header.checksumOffset)
        if completes && field + 2 > length { return .failure(.checksumOutOfBounds) }
        if completes {
            // The field already holds the pseudo-header sum; summing over it folds that in. A copy sums as it
            // copies (one pass over the bytes).
            let folded: UInt16
            if output != packet {
                output.copyMemory(from: packet, byteCount: start)
                folded = InternetChecksum.copySum(output + start, packet + start, length - start)
            } else {
                folded = InternetChecksum.sum(output + start, length - start)
            }
            storeBE16(output, field, nonZero(InternetChecksum.finish(folded)))
        } else if output != packet {
            output.copyMemory(from: packet, byteCount: length)
        }
        outLength.pointee = UInt32(length)
        return .success(1)
    }

    private static func segment(header: VirtioNetHeader, packet: UnsafeMutableRawPointer, length: Int,
                                outputs: UnsafePointer<UnsafeMutableRawPointer>, capacity: Int,
                                outLengths: UnsafeMutablePointer<UInt32>, maxSegments: Int) -> Result<Int, OffloadDrop> {
        let type = header.gso!
        let isTCP = type != .udpL4
        guard header.flags & VirtioNetHeader.needsChecksum != 0 else { return .failure(.badHeader) }
        guard header.gsoSize > 0 else { return .failure(.badGSOSize) }
        guard length > 0 else { return .failure(.truncated) }

        // IP header.
        let proto = isTCP ? IPProto.tcp : IPProto.udp
        let version = packet.load(as: UInt8.self) >> 4
        switch (type, version) {
        case (.tcpV4, 4), (.tcpV6, 6), (.udpL4, 4), (.udpL4, 6): break
        default: return .failure(.badIPHeader)
        }
        let isV4 = version == 4
        let ipHeader: Int
        if isV4 {
            guard length >= IPv4Field.minHeader else { return .failure(.truncated) }
            ipHeader = Int(packet.load(as: UInt8.self) & 0x0f) * 4
            guard ipHeader >= IPv4Field.minHeader else { return .failure(.badIPHeader) }
            let total = Int(loadBE16(packet, IPv4Field.totalLength))
            guard total >= ipHeader else { return .failure(.badIPHeader) }
            guard total <= length, ipHeader <= length else { return .failure(.truncated) }
            guard total == length,
                  loadBE16(packet, IPv4Field.flagsFragment) & IPv4Field.fragmentMask == 0,
                  packet.load(fromByteOffset: IPv4Field.proto, as: UInt8.self) == proto
            else { return .failure(.badIPHeader) }
        } else {
            ipHeader = IPv6Field.header
            guard length >= ipHeader else { return .failure(.truncated) }
            let total = ipHeader + Int(loadBE16(packet, IPv6Field.payloadLength))
            guard total <= length else { return .failure(.truncated) }
            guard total == length,
                  packet.load(fromByteOffset: IPv6Field.nextHeader, as: UInt8.self) == proto
            else { return .failure(.badIPHeader) }
        }

        // L4 header.
        let l4Header: Int
        if isTCP {
            guard length >= ipHeader + TCPField.minHeader else { return .failure(.truncated) }
            l4Header = Int(packet.load(fromByteOffset: ipHeader + TCPField.dataOffset, as: UInt8.self) >> 4) * 4
            guard l4Header >= TCPField.minHeader, ipHeader + l4Header <= length else {
                return .failure(.badL4Header)
            }
        } else {
            l4Header = UDPField.header
            guard length >= ipHeader + l4Header else { return .failure(.truncated) }
        }
        let checksumOffset = isTCP ? TCPField.checksum : UDPField.checksum
        guard Int(header.checksumStart) == ipHeader, Int(header.checksumOffset) == checksumOffset else {
            return .failure(.checksumOutOfBounds)
        }

        let headers = ipHeader + l4Header
        let payload = length - headers
        let gso = Int(header.gsoSize)
        let count = payload == 0 ? 1 : (payload + gso - 1) / gso
        guard count <= maxSegments else { return .failure(.tooManySegments) }
        guard headers + min(gso, payload) <= capacity else { return .failure(.outputTooSmall) }

        // What the segments derive from, read before segment 0 (maybe in place) changes the headers.
        let addressSum = isV4 ? InternetChecksum.sum(packet + 12, 8) : InternetChecksum.sum(packet + 8, 32)
        let firstID = isV4 ? loadBE16(packet, IPv4Field.id) : 0
        let firstSeq = isTCP ? loadBE32(packet, ipHeader + TCPField.seq) : 0
        let originalFlags = isTCP ? packet.load(fromByteOffset: ipHeader + TCPField.flags, as: UInt8.self) : 0
        let last = count - 1

        var i = last
        while i >= 0 {
            let offset = i * gso
            let bytes = min(gso, payload - offset)
            let out = outputs[i]
            let segmentLength = headers + bytes
            let l4Length = segmentLength - ipHeader
            // The payload's sum is taken while it is copied (one pass over it); the headers' after they change.
            // (The L4 header is a multiple of 4 bytes long, so the payload starts at an even offset of the L4
            // bytes and the two sums add.)
            let payloadSum: UInt16
            if out != packet {
                out.copyMemory(from: packet, byteCount: headers)
                payloadSum = InternetChecksum.copySum(out + headers, packet + headers + offset, bytes)
            } else {
                payloadSum = InternetChecksum.sum(out + headers, bytes)
            }
            if isV4 {
                storeBE16(out, IPv4Field.totalLength, UInt16(segmentLength))
                storeBE16(out, IPv4Field.id, firstID &+ UInt16(truncatingIfNeeded: i))
                storeBE16(out, IPv4Field.checksum, 0)
                storeBE16(out, IPv4Field.checksum, InternetChecksum.finish(InternetChecksum.sum(out, ipHeader)))
            } else {
                storeBE16(out, IPv6Field.payloadLength, UInt16(l4Length))
            }
            let l4 = out + ipHeader
            if isTCP {
                storeBE32(l4, TCPField.seq, firstSeq &+ UInt32(truncatingIfNeeded: offset))
                var flags = originalFlags
                if i != last { flags &= ~(TCPFlag.fin | TCPFlag.psh) }
                if i != 0 { flags &= ~TCPFlag.cwr }
                l4.storeBytes(of: flags, toByteOffset: TCPField.flags, as: UInt8.self)
            } else {
                storeBE16(l4, UDPField.length, UInt16(l4Length))
            }
            storeBE16(l4, checksumOffset, 0)
            let pseudo = InternetChecksum.fold(UInt64(addressSum) &+ UInt64(proto) &+ UInt64(l4Length))
            let folded = InternetChecksum.combine(pseudo, InternetChecksum.sum(l4, l4Header), payloadSum)
            let checksum = InternetChecksum.finish(folded)
            storeBE16(l4, checksumOffset, isTCP ? checksum : nonZero(checksum))
            outLengths[i] = UInt32(segmentLength)
            i -= 1
        }
        return .success(count)
    }

    /// A computed checksum of 0 goes out as 0xffff (the same in ones'-complement arithmetic): for UDP, 0 would
    /// mean "no checksum".
    @inline(__always)
    static func nonZero(_ checksum: UInt16) -> UInt16 { checksum == 0 ? 0xffff : checksum }
}
