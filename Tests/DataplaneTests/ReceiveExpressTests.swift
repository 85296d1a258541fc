// The receive express lane (Queueing/ReceiveExpress.swift, Pipeline/ReceiveExpressLane.swift): which decrypted
// packets may overtake the bulk in flight, the per-flow table that keeps a flow's small packets in order, and a
// device pair under a burst where pings and acknowledgements go ahead while every flow's data stays in order.
import XCTest
import Crypto
@testable import Dataplane
import TestSupport

private enum Build {
    static let a: UInt32 = 0xC613_0001, b: UInt32 = 0xC613_0002
    static let a6: (UInt64, UInt64) = (0xfd19_0000_0000_0000, 1), b6: (UInt64, UInt64) = (0xfd19_0000_0000_0000, 2)

    /// An IPv4 packet with any protocol; `flagsFragment` is the flags/offset word (0x2000 = MF).
    static func v4(proto: UInt8, l4: [UInt8], flagsFragment: UInt16 = 0x4000, ihlWords: UInt8 = 5) -> [UInt8] {
        let options = [UInt8](repeating: 1, count: max(0, Int(ihlWords) - 5) * 4)
        var header = [0x40 | ihlWords, 0] + PacketBuilder.be16(UInt16(20 + options.count + l4.count)) + [0, 0]
            + PacketBuilder.be16(flagsFragment) + [64, proto, 0, 0] + PacketBuilder.be32(a) + PacketBuilder.be32(b)
            + options
        let sum = PacketBuilder.checksum(header[...])
        header[10] = UInt8(sum >> 8); header[11] = UInt8(sum & 0xff)
        return header + l4
    }

    /// An IPv6 packet whose first next header is `first` (an extension header's bytes go at the start of `rest`).
    static func v6(first: UInt8, rest: [UInt8]) -> [UInt8] {
        PacketBuilder.be32(6 << 28) + PacketBuilder.be16(UInt16(rest.count)) + [first, 64]
            + PacketBuilder.be64(a6.0) + PacketBuilder.be64(a6.1) + PacketBuilder.be64(b6.0) + PacketBuilder.be64(b6.1)
            + rest
    }

    /// An ICMP (or ICMPv6) echo message: type, code, checksum, identifier, sequence, payload.
    static func echo(type: UInt8 = 8, id: UInt16 = 7, seq: UInt16, payload: Int = 56) -> [UInt8] {
        var m = [type, 0, 0, 0] + PacketBuilder.be16(id) + PacketBuilder.be16(seq)
            + [UInt8](repeating: 0xab, count: payload)
        let sum = PacketBuilder.checksum(m[...])
        m[2] = UInt8(sum >> 8); m[3] = UInt8(sum & 0xff)
        return m
    }

    static func tcp(_ flags: UInt8, payload: Int = 0, options: [UInt8] = [], seq: UInt32 = 1, ack: UInt32 = 1,
                    v6: Bool = false) -> [UInt8] {
        let t = PacketBuilder.TCP(seq: seq, ack: ack, flags: flags, options: options)
        let data = [UInt8](repeating: 0x5a, count: payload)
        return v6 ? PacketBuilder.ipv6TCP(src: a6, dst: b6, tcp: t, payload: data)
            : PacketBuilder.ipv4TCP(src: a, dst: b, tcp: t, payload: data)
    }
}

final class ReceiveExpressTests: XCTestCase {
    typealias F = PacketBuilder.TCPFlags

    private func verdict(_ packet: [UInt8], padding: Int = 0) -> ExpressVerdict {
        let bytes = packet + [UInt8](repeating: 0, count: padding)
        return bytes.withUnsafeBytes { ExpressRule.verdict($0.baseAddress!, bytes.count) }
    }

    func testWhichPacketsMayGoAhead() {
        let timestamps: [UInt8] = [1, 1, 8, 10] + [UInt8](repeating: 3, count: 8)
        let sack: [UInt8] = [1, 1, 5, 10] + [UInt8](repeating: 4, count: 8)
        let cases: [(String, [UInt8], ExpressVerdict)] = [
            ("v4 pure ACK", Build.tcp(F.ack), .candidate),
            ("v4 ACK with timestamps and SACK", Build.tcp(F.ack, options: timestamps + sack), .candidate),
            ("v4 ACK with ECE and CWR", Build.tcp(F.ack | F.ece | F.cwr), .candidate),
            ("v4 SYN", Build.tcp(F.syn, options: [2, 4, 5, 0xb4]), .candidate),
            ("v4 SYN-ACK", Build.tcp(F.syn | F.ack), .candidate),
            ("v4 one byte of data", Build.tcp(F.ack, payload: 1), .inOrder),
            ("v4 data with PSH", Build.tcp(F.ack | F.psh, payload: 100), .inOrder),
            ("v4 SYN with data (Fast Open)", Build.tcp(F.syn, payload: 20), .inOrder),
            ("v4 FIN", Build.tcp(F.fin | F.ack), .inOrder),
            ("v4 RST", Build.tcp(F.rst), .inOrder),
            ("v4 RST-ACK", Build.tcp(F.rst | F.ack), .inOrder),
            ("v6 pure ACK", Build.tcp(F.ack, options: timestamps, v6: true), .candidate),
            ("v6 data", Build.tcp(F.ack, payload: 10, v6: true), .inOrder),
            ("v6 FIN", Build.tcp(F.fin | F.ack, v6: true), .inOrder),
            ("v4 UDP", PacketBuilder.ipv4UDP(src: Build.a, dst: Build.b, payload: [1, 2, 3]), .inOrder),
            ("v6 UDP", PacketBuilder.ipv6UDP(src: Build.a6, dst: Build.b6, payload: [1, 2, 3]), .inOrder),
            ("v4 UDP-Lite", Build.v4(proto: 136, l4: [0, 1, 0, 2, 0, 8, 0, 0]), .inOrder),
            ("v4 ESP", Build.v4(proto: 50, l4: [UInt8](repeating: 9, count: 24)), .inOrder),
            ("v4 ICMP echo", Build.v4(proto: 1, l4: Build.echo(seq: 1)), .candidate),
            ("v4 ICMP echo reply", Build.v4(proto: 1, l4: Build.echo(type: 0, seq: 1)), .candidate),
            ("v4 ICMP with IP options", Build.v4(proto: 1, l4: Build.echo(seq: 1), ihlWords: 6), .candidate),
            ("v4 ICMP first fragment (MF)", Build.v4(proto: 1, l4: Build.echo(seq: 1), flagsFragment: 0x2000), .inOrder),
            ("v4 ICMP later fragment", Build.v4(proto: 1, l4: Build.echo(seq: 1), flagsFragment: 0x0010), .inOrder),
            ("v4 TCP ACK later fragment", Build.v4(proto: 6, l4: Array(Build.tcp(F.ack)[20...]), flagsFragment: 0x0003), .inOrder),
            ("v6 ICMPv6 echo", Build.v6(first: 58, rest: Build.echo(type: 128, seq: 1)), .candidate),
            ("v6 neighbour solicitation", Build.v6(first: 58, rest: [135, 0, 0, 0] + [UInt8](repeating: 0, count: 20)), .candidate),
            ("v6 hop-by-hop then ICMPv6", Build.v6(first: 0, rest: [58, 0, 1, 4, 0, 0, 0, 0] + Build.echo(type: 128, seq: 1)), .inOrder),
            ("v6 fragment header", Build.v6(first: 44, rest: [58, 0, 0, 1, 0, 0, 0, 1] + Build.echo(type: 128, seq: 1)), .inOrder),
            ("v6 destination options", Build.v6(first: 60, rest: [6, 0, 1, 4, 0, 0, 0, 0] + Array(Build.tcp(F.ack, v6: true)[40...])), .inOrder),
            ("empty", [], .inOrder),
            ("version 5", [0x50] + [UInt8](repeating: 0, count: 39), .inOrder),
            ("v4 cut inside the header", Array(Build.tcp(F.ack)[..<12]), .inOrder),
            ("v4 IHL below 5", { var p = Build.tcp(F.ack); p[0] = 0x44; return p }(), .inOrder),
            ("v4 total length beyond the packet", { var p = Build.tcp(F.ack); p[3] &+= 8; return p }(), .inOrder),
            ("v4 TCP header cut short", { var p = Array(Build.tcp(F.ack)[..<30]); p[2] = 0; p[3] = 30; return p }(), .inOrder),
            ("v4 TCP data offset below 5", { var p = Build.tcp(F.ack); p[32] = 0x40; return p }(), .inOrder),
            ("v4 TCP data offset past the end", { var p = Build.tcp(F.ack); p[32] = 0xf0; return p }(), .inOrder),
            ("v6 payload length beyond the packet", { var p = Build.tcp(F.ack, v6: true); p[5] &+= 4; return p }(), .inOrder),
            ("v6 cut inside the header", Array(Build.tcp(F.ack, v6: true)[..<30]), .inOrder),
        ]
        for (name, packet, expected) in cases {
            XCTAssertEqual(verdict(packet), expected, name)
            // WireGuard pads the inner packet to 16 bytes: the IP header's own length is what counts (the cases
            // whose header claims more than there is would fit once padded).
            if packet.count >= 20 && !name.contains("beyond") { XCTAssertEqual(verdict(packet, padding: 15), expected, name + " (padded)") }
        }
    }

    func testTableKeepsAFlowsSmallPacketsInOrder() {
        var t = ExpressFlowTable()
        let flow: UInt32 = 0, other: UInt32 = 0x8000_0000, third: UInt32 = 0x4000_0000   // buckets 0, 512, 256
        XCTAssertTrue(t.admit(hash: flow, batch: 1), "nothing in flight: may go ahead")
        t.keepInOrder(hash: flow, batch: 1)                   // e.g. a small data segment of the flow
        XCTAssertFalse(t.admit(hash: flow, batch: 2), "batch 1 carries the flow's packet and is not delivered")
        XCTAssertTrue(t.admit(hash: other, batch: 2), "another flow is not held up")
        t.noteDelivered(1)
        XCTAssertFalse(t.admit(hash: flow, batch: 2), "the refused packet itself went in batch 2, still in flight")
        t.noteDelivered(1)
        XCTAssertEqual(t.delivered, 2)
        XCTAssertTrue(t.admit(hash: flow, batch: 3))
        // Small datagrams that went unchecked in batch 4 stop every flow until it is delivered.
        t.noteUnchecked(batch: 4)
        XCTAssertFalse(t.admit(hash: other, batch: 4))
        XCTAssertFalse(t.admit(hash: flow, batch: 4))
        t.noteDelivered(1)
        XCTAssertFalse(t.admit(hash: third, batch: 5), "batch 4 is not delivered yet")
        t.noteDelivered(1)
        XCTAssertTrue(t.admit(hash: flow, batch: 5))
        XCTAssertTrue(t.admit(hash: other, batch: 5))
        XCTAssertFalse(t.admit(hash: third, batch: 6), "its refused packet is in batch 5")
    }

    // MARK: Device pair

    /// A burst far larger than the receive budget: bulk UDP of one flow, and every 16th packet a ping, a pure
    /// ACK, a small TCP data segment (all of one connection) and a small UDP datagram of the bulk flow. Returns
    /// what B's TUN got, what was sent, and B's express count.
    private func burst(aqm: Bool) throws -> (got: [[UInt8]], sent: [[UInt8]], express: UInt64) {
        let pair = try DevicePair(threads: 2, aqm: aqm)
        pair.start()
        defer { pair.stop() }
        pair.tunA.inject([DevicePair.packet(0)])
        XCTAssertEqual(pair.tunB.collect(atLeast: 1), [DevicePair.packet(0)])
        var sent: [[UInt8]] = []
        var small = 0
        for n in 1...3000 {
            if n % 16 == 0 {
                small += 1
                sent.append(Build.v4(proto: 1, l4: Build.echo(seq: UInt16(small))))
                sent.append(Build.tcp(F.ack, seq: 1, ack: UInt32(small)))
                sent.append(Build.tcp(F.ack | F.psh, payload: 40, seq: UInt32(small * 40), ack: 1))
                sent.append(DevicePair.packet(n, size: 60))
            } else {
                sent.append(DevicePair.packet(n, size: 1200))
            }
        }
        pair.tunA.inject(sent)
        let got = pair.tunB.collect(atLeast: sent.count, timeoutNanoseconds: 30_000_000_000)
        return (got, sent, pair.b.counters[.rxExpressPackets])
    }

    /// The subsequence of `packets` of one kind, in the order given.
    private func only(_ packets: [[UInt8]], _ kind: ([UInt8]) -> Bool) -> [[UInt8]] { packets.filter(kind) }

    func testPingsAndAcknowledgementsGoAheadWhileEveryFlowStaysInOrder() throws {
        let (got, sent, express) = try burst(aqm: true)
        XCTAssertEqual(got.count, sent.count, "packets lost")
        XCTAssertEqual(Set(got.map { $0 }).count, sent.count, "packets duplicated")
        let isUDP = { (p: [UInt8]) in p[9] == 17 }
        let isPing = { (p: [UInt8]) in p[9] == 1 }
        let isTCPData = { (p: [UInt8]) in p[9] == 6 && p.count > 40 }
        let isPureACK = { (p: [UInt8]) in p[9] == 6 && p.count == 40 }
        for (name, kind) in [("UDP", isUDP), ("ICMP", isPing), ("TCP data", isTCPData), ("TCP ACKs", isPureACK)] {
            XCTAssertTrue(only(got, kind) == only(sent, kind), "\(name) reordered")
        }
        XCTAssertGreaterThan(express, 0, "no ping or acknowledgement went ahead of the bulk")
        XCTAssertLessThanOrEqual(express, UInt64(only(sent, { isPing($0) || isPureACK($0) }).count),
                                 "something other than pings and pure ACKs went ahead")
    }

    func testNoExpressLaneWithoutAQM() throws {
        let (got, sent, express) = try burst(aqm: false)
        XCTAssertTrue(got == sent, "--no-aqm keeps the peer's order exactly")
        XCTAssertEqual(express, 0)
    }
}
