// The TunInterface contract for LinuxTun, one suite for both ways it does I/O: read(2)/writev(2) and io_uring
// (TunRing), each with offloads (IFF_VNET_HDR) on and off. The TUN and a UDP socket are created inside a private
// network namespace by a thread that entered it; traffic only goes between them (198.19.99.0/24 on the TUN).
// Needs root; the io_uring variant also needs a kernel whose TUN can be read through io_uring.
import CTestSupport
import Dataplane
import Glibc
import TestSupport
import XCTest

final class TunContractTests: XCTestCase {
    func testPlainReadsArriveInOrder() throws { try run(uring: false, TunContract.readsInOrder) }
    func testRingReadsArriveInOrder() throws { try run(uring: true, TunContract.readsInOrder) }
    func testPlainSegmentedSendIsSplit() throws { try run(uring: false, TunContract.segmentedSend) }
    func testRingSegmentedSendIsSplit() throws { try run(uring: true, TunContract.segmentedSend) }
    func testPlainWritesReachTheSocket() throws { try run(uring: false, TunContract.writesInOrder) }
    func testRingWritesReachTheSocket() throws { try run(uring: true, TunContract.writesInOrder) }
    func testPlainTimeoutAndWake() throws { try run(uring: false, TunContract.timeoutAndWake) }
    func testRingTimeoutAndWake() throws { try run(uring: true, TunContract.timeoutAndWake) }
    func testPlainOversizedPacketIsDroppedAndCounted() throws { try run(uring: false, TunContract.oversized) }
    func testRingOversizedPacketIsDroppedAndCounted() throws { try run(uring: true, TunContract.oversized) }

    private func run(uring: Bool, _ body: (TunFixture) throws -> Void) throws {
        guard getuid() == 0 else { throw XCTSkip("TUN contract tests need root (a private network namespace and a TUN)") }
        if uring {
            let (available, reason) = UringBind.probe()
            guard available else { throw XCTSkip("io_uring unavailable: \(reason)") }
        }
        for offloads in [true, false] {
            let f = try TunFixture.make(uring: uring, offloads: offloads)
            defer { f.close() }
            if uring && !f.tun.usesRing { throw XCTSkip("this kernel's TUN cannot go through io_uring: \(f.tun.ioNote)") }
            XCTAssertEqual(f.tun.usesRing, uring, "\(f): \(f.tun.ioNote)")
            try body(f)
        }
    }
}

/// A TUN with 198.19.99.1/24, up, and a UDP socket bound to 198.19.99.1, both in a fresh network namespace.
struct TunFixture: CustomStringConvertible {
    static let local: UInt32 = 0xC613_6301    // 198.19.99.1, the TUN's address
    static let remote: UInt32 = 0xC613_6302   // 198.19.99.2, routed into the TUN
    let tun: LinuxTun
    let counters: Counters
    let socket: Int32
    let port: UInt16
    let uring: Bool
    let offloads: Bool

    var description: String { "\(uring ? "io_uring" : "read/writev"), offloads \(offloads ? "on" : "off")" }

    static func make(uring: Bool, offloads: Bool) throws -> TunFixture {
        final class Box: @unchecked Sendable {  // written by the thread before join, read after
            var value: Result<TunFixture, any Error> = .failure(XCTSkip("not run"))
        }
        let box = Box()
        let thread = PipelineThread(name: "vf-test-tun") {
            do {
                let rc = vf_test_enter_private_netns()
                if rc == -EPERM { throw XCTSkip("cannot create a private network namespace (EPERM)") }
                if rc < 0 { throw SystemError("enter a private network namespace", negated: Int(rc)) }
                let counters = Counters()
                let tun = try LinuxTun(name: "vftest%d", offloads: offloads, uring: uring, counters: counters)
                let up = vf_test_ifup4(tun.name, TunFixture.local, 24)
                if up < 0 { tun.close(); throw SystemError("configure \(tun.name)", negated: Int(up)) }
                let s = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
                if s < 0 { tun.close(); throw SystemError("socket", negated: Int(errno)) }
                var addr = sockaddr_in()
                addr.sin_family = sa_family_t(AF_INET)
                addr.sin_addr.s_addr = TunFixture.local.bigEndian
                var len = socklen_t(MemoryLayout<sockaddr_in>.size)
                let bound = withUnsafePointer(to: &addr) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(s, $0, len) }
                }
                if bound < 0 { tun.close(); Glibc.close(s); throw SystemError("bind", negated: Int(errno)) }
                _ = withUnsafeMutablePointer(to: &addr) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) }
                }
                // Room for a whole written burst before the test reads it (the default would drop some).
                var rcvbuf: Int32 = 4 << 20
                setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, socklen_t(MemoryLayout<Int32>.size))
                var tv = timeval(tv_sec: 3, tv_usec: 0)
                setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                box.value = .success(TunFixture(tun: tun, counters: counters, socket: s, port: UInt16(bigEndian: addr.sin_port),
                                                uring: uring, offloads: offloads))
            } catch {
                box.value = .failure(error)
            }
        }
        thread.join()
        return try box.value.get()
    }

    func close() {
        tun.close()
        Glibc.close(socket)
    }

    /// Sends `payload` from the socket to 198.19.99.2:`port` (into the TUN).
    func send(_ payload: [UInt8], port: UInt16) {
        var to = sockaddr_in()
        to.sin_family = sa_family_t(AF_INET)
        to.sin_addr.s_addr = TunFixture.remote.bigEndian
        to.sin_port = port.bigEndian
        let n = payload.withUnsafeBytes { b in
            withUnsafePointer(to: &to) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(socket, b.baseAddress, b.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        XCTAssertEqual(n, payload.count, "\(self): sendto: errno \(errno)")
    }

    /// Reads from the TUN (`capacity` bytes a packet) until `count` IPv4 UDP packets to `port` arrived or 3 s
    /// passed; returns their payloads in arrival order (other traffic the kernel sends on a new link is skipped).
    func readUDP(port: UInt16, count: Int, capacity: Int = 2048) throws -> [[UInt8]] {
        let batch = 128
        let buffers = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: batch)
        let lengths = UnsafeMutablePointer<UInt32>.allocate(capacity: batch)
        for i in 0..<batch { buffers[i] = .allocate(byteCount: 2048, alignment: 16) }
        defer {
            for i in 0..<batch { buffers[i].deallocate() }
            buffers.deallocate(); lengths.deallocate()
        }
        var out: [[UInt8]] = []
        let deadline = monotonicNow() + 3_000_000_000
        while out.count < count && monotonicNow() < deadline {
            let n = try tun.read(buffers, capacity: capacity, lengths: lengths, count: batch, timeoutMs: 200)
            for i in 0..<n {
                let p = UnsafeRawBufferPointer(start: buffers[i], count: Int(lengths[i]))
                guard p.count >= 28, p[0] >> 4 == 4, p[9] == 17 else { continue }
                let ihl = Int(p[0] & 0x0f) * 4
                guard p.count >= ihl + 8, UInt16(p[ihl + 2]) << 8 | UInt16(p[ihl + 3]) == port else { continue }
                XCTAssertEqual(Int(UInt16(p[2]) << 8 | UInt16(p[3])), p.count, "\(self): IPv4 total length")
                XCTAssertEqual(PacketBuilder.checksum(ArraySlice(p[0..<ihl])), 0, "\(self): IPv4 header checksum")
                out.append(Array(p[(ihl + 8)...]))
            }
        }
        return out
    }
}

enum TunContract {
    /// 200 datagrams sent one by one come out of the TUN complete and in order.
    static func readsInOrder(_ f: TunFixture) throws {
        let sent = (0..<200).map { datagram($0, size: 16 + $0 % 300) }
        for d in sent { f.send(d, port: 7001) }
        let got = try f.readUDP(port: 7001, count: sent.count)
        XCTAssertEqual(got.count, sent.count, "\(f)")
        XCTAssertTrue(got == sent, "\(f): payloads differ or are out of order")
    }

    /// A UDP GSO send of 20 segments: with USO on the TUN it arrives as one super-packet, which the read splits
    /// back into 20 datagrams (without offloads the kernel segments it first). Either way: 20 intact datagrams.
    static func segmentedSend(_ f: TunFixture) throws {
        let segment = 1000
        XCTAssertEqual(vf_test_udp_segment(f.socket, Int32(segment)), 0, "\(f): UDP_SEGMENT")
        defer { _ = vf_test_udp_segment(f.socket, 0) }
        let parts = (0..<20).map { datagram(1000 + $0, size: $0 == 19 ? 321 : segment) }
        f.send(parts.flatMap { $0 }, port: 7002)
        let got = try f.readUDP(port: 7002, count: parts.count)
        XCTAssertEqual(got.count, parts.count, "\(f)")
        XCTAssertTrue(got == parts, "\(f): segments differ or are out of order")
    }

    /// 150 packets written in one call (coalesced into super-packets when offloads are on) reach the socket
    /// complete and in order.
    static func writesInOrder(_ f: TunFixture) throws {
        let payloads = (0..<150).map { datagram(5000 + $0, size: 100 + ($0 / 50) * 400) }
        let packets = payloads.map {
            PacketBuilder.ipv4UDP(src: TunFixture.remote, dst: TunFixture.local, srcPort: 5555, dstPort: f.port,
                                  payload: $0)
        }
        let buffers = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: packets.count)
        let lengths = UnsafeMutablePointer<UInt32>.allocate(capacity: packets.count)
        for (i, p) in packets.enumerated() {
            buffers[i] = .allocate(byteCount: p.count, alignment: 16)
            p.withUnsafeBytes { buffers[i].copyMemory(from: $0.baseAddress!, byteCount: p.count) }
            lengths[i] = UInt32(p.count)
        }
        defer {
            for i in 0..<packets.count { buffers[i].deallocate() }
            buffers.deallocate(); lengths.deallocate()
        }
        XCTAssertEqual(f.tun.write(buffers, lengths: lengths, count: packets.count), packets.count, "\(f)")
        var got: [[UInt8]] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while got.count < payloads.count {
            let n = recv(f.socket, &buf, buf.count, 0)
            if n < 0 { break }
            got.append(Array(buf[0..<n]))
        }
        XCTAssertEqual(got.count, payloads.count, "\(f)")
        XCTAssertTrue(got == payloads, "\(f): payloads differ or are out of order")
    }

    /// A packet longer than the read's capacity (the interface MTU raised past the configured one) is dropped and
    /// counted, never handed on cut short; the packets around it arrive intact.
    static func oversized(_ f: TunFixture) throws {
        let before = f.counters[.txDropBadInner] + f.counters[.txDropBadOffload]
        let sent = [datagram(1, size: 200), datagram(2, size: 1000), datagram(3, size: 300)]
        for d in sent { f.send(d, port: 7004) }
        // 228 and 328 bytes fit in 600; the 1028-byte packet does not.
        let got = try f.readUDP(port: 7004, count: 2, capacity: 600)
        XCTAssertTrue(got == [sent[0], sent[2]], "\(f): got \(got.map(\.count)) payload bytes")
        XCTAssertEqual(f.counters[.txDropBadInner] + f.counters[.txDropBadOffload] - before, 1, "\(f)")
    }

    /// A read with a timeout and nothing to read returns 0 after about that long; wake() ends an endless wait.
    static func timeoutAndWake(_ f: TunFixture) throws {
        let buffers = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: 8)
        let lengths = UnsafeMutablePointer<UInt32>.allocate(capacity: 8)
        for i in 0..<8 { buffers[i] = .allocate(byteCount: 2048, alignment: 16) }
        defer { for i in 0..<8 { buffers[i].deallocate() }; buffers.deallocate(); lengths.deallocate() }
        // Whatever the kernel sent when the link came up is read first; then the link is quiet.
        while try f.tun.read(buffers, capacity: 2048, lengths: lengths, count: 8, timeoutMs: 300) > 0 {}
        let start = monotonicNow()
        XCTAssertEqual(try f.tun.read(buffers, capacity: 2048, lengths: lengths, count: 8, timeoutMs: 100), 0, "\(f)")
        let waited = monotonicNow() - start
        XCTAssertGreaterThanOrEqual(waited, 90_000_000, "\(f): returned after \(waited) ns")
        XCTAssertLessThan(waited, 2_000_000_000, "\(f)")
        let tun = f.tun
        let waker = PipelineThread(name: "vf-test-wake") {
            usleep(100_000)
            tun.wake()
        }
        let woke = monotonicNow()
        XCTAssertEqual(try f.tun.read(buffers, capacity: 2048, lengths: lengths, count: 8, timeoutMs: -1), 0, "\(f)")
        XCTAssertLessThan(monotonicNow() - woke, 2_000_000_000, "\(f)")
        waker.join()
    }
}

private func monotonicNow() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
