// The UDPBind contract, one suite for every socket backend: MmsgBind (recvmmsg/sendmmsg) and UringBind
// (io_uring), each with UDP GSO/GRO on and off. The sockets are created inside a private network namespace on a
// thread that entered it, and only talk over that namespace's loopback: nothing reaches the machine's network.
// Needs root (unshare(CLONE_NEWNET)); UringBind also needs a kernel that allows io_uring.
import CTestSupport
import Dataplane
import Glibc
import XCTest

final class BindContractTests: XCTestCase {
    func testMmsgSingleDatagramsBothWays() throws { try run(.mmsg, BindContract.singleDatagramsBothWays) }
    func testUringSingleDatagramsBothWays() throws { try run(.uring, BindContract.singleDatagramsBothWays) }
    func testMmsgBurstArrivesCompleteAndInOrder() throws { try run(.mmsg, BindContract.burstInOrder) }
    func testUringBurstArrivesCompleteAndInOrder() throws { try run(.uring, BindContract.burstInOrder) }
    func testMmsgSegmentedRunArrivesIntact() throws { try run(.mmsg, BindContract.segmentedRun) }
    func testUringSegmentedRunArrivesIntact() throws { try run(.uring, BindContract.segmentedRun) }
    func testMmsgMixedEndpointsInOneSend() throws { try run(.mmsg, BindContract.mixedEndpoints) }
    func testUringMixedEndpointsInOneSend() throws { try run(.uring, BindContract.mixedEndpoints) }
    func testMmsgIPv4AndIPv6Endpoints() throws { try run(.mmsg, BindContract.ipv4AndIPv6) }
    func testUringIPv4AndIPv6Endpoints() throws { try run(.uring, BindContract.ipv4AndIPv6) }
    func testMmsgTruncatedMessagesAreCounted() throws { try run(.mmsg, BindContract.truncation) }
    func testUringTruncatedMessagesAreCounted() throws { try run(.uring, BindContract.truncation) }
    func testMmsgWakeEndsAWait() throws { try run(.mmsg, BindContract.wake) }
    func testUringWakeEndsAWait() throws { try run(.uring, BindContract.wake) }
    func testMmsgOuterTOSAndTimestamps() throws { try run(.mmsg, BindContract.tosAndTimestamps) }
    func testUringOuterTOSAndTimestamps() throws { try run(.uring, BindContract.tosAndTimestamps) }
    func testMmsgTimeoutReturnsZero() throws { try run(.mmsg, BindContract.timeout) }
    func testUringTimeoutReturnsZero() throws { try run(.uring, BindContract.timeout) }

    /// Four provided buffers for a 200-datagram burst: the multishot receive runs out (ENOBUFS) again and again
    /// and must be armed again each time without losing or reordering anything.
    func testUringSmallBufferRingRecovers() throws {
        try run(.uring, receiveBuffers: 4, BindContract.burstInOrder)
    }

    /// A jumbo tunnel MTU: 9000-byte datagrams arrive whole, with and without GRO. UringBind receives into
    /// buffers of its own, sized by `maxDatagram` (as `vpnfast up` sizes it from the MTU); with the default 2048
    /// the uring case fails. MmsgBind receives into the caller's buffers, so its case is the contract alone.
    func testMmsgJumboDatagramsArriveWhole() throws { try run(.mmsg, maxDatagram: 9064, BindContract.jumbo) }
    func testUringJumboDatagramsArriveWhole() throws { try run(.uring, maxDatagram: 9064, BindContract.jumbo) }

    func testUringProbeExplainsItself() throws {
        let (available, reason) = UringBind.probe()
        XCTAssertFalse(reason.isEmpty)
        if available { XCTAssertTrue(reason.hasPrefix("io_uring ready"), reason) }
    }

    /// Runs `body` for `backend` with offloads on, then off.
    private func run(_ backend: BindFactory.Backend, receiveBuffers: Int = 0, maxDatagram: Int = 0,
                     _ body: (BindFactory) throws -> Void) throws {
        guard getuid() == 0 else {
            throw XCTSkip("socket contract tests need root to create a private network namespace (unshare CLONE_NEWNET)")
        }
        if backend == .uring {
            let (available, reason) = UringBind.probe()
            guard available else { throw XCTSkip("io_uring unavailable: \(reason)") }
        }
        for offloads in [true, false] {
            try body(BindFactory(backend: backend, offloads: offloads, receiveBuffers: receiveBuffers,
                                 maxDatagram: maxDatagram))
        }
    }
}

/// Makes binds of one backend, all in one fresh private network namespace.
struct BindFactory: CustomStringConvertible {
    enum Backend: String { case mmsg, uring }
    let backend: Backend
    let offloads: Bool
    /// UringBind's provided buffers (0: its default).
    var receiveBuffers = 0
    /// UringBind's largest datagram without GRO (0: its default).
    var maxDatagram = 0

    var description: String {
        "\(backend) offloads \(offloads ? "on" : "off")" + (receiveBuffers > 0 ? " \(receiveBuffers) buffers" : "")
    }

    /// `count` binds on kernel-chosen ports, created by a thread inside a new network namespace whose loopback
    /// is up. The sockets stay in that namespace, so any thread may use them.
    func make(_ count: Int) throws -> [any UDPBind] {
        let result = ThreadResult()
        let backend = self.backend
        let offloads = self.offloads
        let maxDatagram = self.maxDatagram > 0 ? self.maxDatagram : UringBind.maxDatagramSize
        let receiveBuffers = self.receiveBuffers
        let thread = PipelineThread(name: "vf-test-netns") {
            let rc = vf_test_enter_private_netns()
            if rc == -EPERM {
                result.set(.failure(XCTSkip("cannot create a private network namespace (unshare CLONE_NEWNET: EPERM)")))
                return
            }
            if rc < 0 {
                result.set(.failure(SystemError("enter a private network namespace", negated: Int(rc))))
                return
            }
            do {
                var binds: [any UDPBind] = []
                for _ in 0..<count {
                    switch backend {
                    case .mmsg: binds.append(try MmsgBind(port: 0, bufferBytes: 4 << 20, offloads: offloads))
                    case .uring: binds.append(try UringBind(port: 0, bufferBytes: 4 << 20, offloads: offloads,
                                                            receiveBuffers: receiveBuffers, maxDatagram: maxDatagram))
                    }
                }
                result.set(.success(binds))
            } catch {
                result.set(.failure(error))
            }
        }
        thread.join()
        return try result.get()
    }

    private final class ThreadResult: @unchecked Sendable {  // written by the thread before join, read after
        private var value: Result<[any UDPBind], any Error> = .success([])
        func set(_ v: Result<[any UDPBind], any Error>) { value = v }
        func get() throws -> [any UDPBind] { try value.get() }
    }
}

/// The offload state a backend settled on.
func offloadState(_ bind: any UDPBind) -> (gro: Bool, gso: Bool) {
    if let b = bind as? MmsgBind { return (b.groEnabled, b.gsoEnabled) }
    if let b = bind as? UringBind { return (b.groEnabled, b.gsoEnabled) }
    return (false, false)
}

let loopback4 = IPAddress("127.0.0.1")!
let loopback6 = IPAddress("::1")!

/// Datagram `tag` of `size` bytes: a 4-byte tag, then a pattern that depends on tag and position.
func datagram(_ tag: Int, size: Int) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: size)
    for i in 0..<size {
        out[i] = i < 4 ? UInt8(truncatingIfNeeded: tag >> (8 * i)) : UInt8(truncatingIfNeeded: tag &* 31 &+ i &* 7)
    }
    return out
}

/// Sends `datagrams[i]` to `to[i]` in one send call. Returns what the bind reports as sent.
@discardableResult
func sendAll(_ bind: any UDPBind, _ datagrams: [[UInt8]], to: [Endpoint], tos: [UInt8]? = nil) throws -> Int {
    precondition(datagrams.count == to.count)
    let n = datagrams.count
    let buffers = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: max(n, 1))
    let lengths = UnsafeMutablePointer<UInt32>.allocate(capacity: max(n, 1))
    let endpoints = UnsafeMutablePointer<Endpoint>.allocate(capacity: max(n, 1))
    defer {
        for i in 0..<n { buffers[i].deallocate() }
        buffers.deallocate(); lengths.deallocate(); endpoints.deallocate()
    }
    for i in 0..<n {
        buffers[i] = .allocate(byteCount: max(datagrams[i].count, 1), alignment: 16)
        datagrams[i].withUnsafeBytes { if let base = $0.baseAddress { buffers[i].copyMemory(from: base, byteCount: $0.count) } }
        lengths[i] = UInt32(datagrams[i].count)
        endpoints.advanced(by: i).initialize(to: to[i])
    }
    guard let tos else { return try bind.send(buffers, lengths: lengths, endpoints: endpoints, count: n) }
    return try tos.withUnsafeBufferPointer {
        try bind.send(buffers, lengths: lengths, endpoints: endpoints, tos: $0.baseAddress, count: n)
    }
}

/// A receiving side with caller-owned buffers, as the device's receive batches provide them.
final class Receiver {
    let bind: any UDPBind
    let bufferCount: Int
    let capacity: Int
    let maxPackets: Int
    private let buffers: UnsafeMutablePointer<UnsafeMutableRawPointer>
    private let packets: UnsafeMutablePointer<UnsafeMutableRawPointer>
    private let lengths: UnsafeMutablePointer<UInt32>
    private let endpoints: UnsafeMutablePointer<Endpoint>
    private let tos: UnsafeMutablePointer<UInt8>
    private let stamps: UnsafeMutablePointer<UInt64>
    /// Messages dropped as truncated so far.
    var truncated = 0
    /// Receive calls that returned datagrams.
    var calls = 0
    /// Outer TOS and kernel timestamp of every datagram received so far, in order.
    var receivedTOS: [UInt8] = []
    var receivedStamps: [UInt64] = []

    init(_ bind: any UDPBind, bufferCount: Int = 8, capacity: Int? = nil) {
        self.bind = bind
        self.bufferCount = bufferCount
        self.capacity = capacity ?? bind.receiveBufferSize
        maxPackets = bufferCount * bind.datagramsPerMessage
        buffers = .allocate(capacity: bufferCount)
        for i in 0..<bufferCount { buffers[i] = .allocate(byteCount: self.capacity, alignment: 16) }
        packets = .allocate(capacity: maxPackets)
        lengths = .allocate(capacity: maxPackets)
        endpoints = .allocate(capacity: maxPackets)
        endpoints.initialize(repeating: Endpoint(), count: maxPackets)
        tos = .allocate(capacity: maxPackets)
        tos.initialize(repeating: 0, count: maxPackets)
        stamps = .allocate(capacity: maxPackets)
        stamps.initialize(repeating: 0, count: maxPackets)
    }

    deinit {
        for i in 0..<bufferCount { buffers[i].deallocate() }
        buffers.deallocate(); packets.deallocate(); lengths.deallocate(); endpoints.deallocate()
        tos.deallocate(); stamps.deallocate()
    }

    /// One receive call.
    func receive(timeoutMs: Int32) throws -> [(bytes: [UInt8], from: Endpoint)] {
        let n = try bind.receive(buffers: buffers, bufferCount: bufferCount, capacity: capacity, packets: packets,
                                 lengths: lengths, endpoints: endpoints, tos: tos, timestamps: stamps,
                                 maxPackets: maxPackets,
                                 truncated: &truncated, timeoutMs: timeoutMs)
        if n > 0 { calls += 1 }
        receivedTOS += (0..<n).map { tos[$0] }
        receivedStamps += (0..<n).map { stamps[$0] }
        return (0..<n).map { k in
            (Array(UnsafeRawBufferPointer(start: packets[k], count: Int(lengths[k]))), endpoints[k])
        }
    }

    /// Receives until `count` datagrams arrived or a call waits `timeoutMs` in vain.
    func collect(_ count: Int, timeoutMs: Int32 = 3000) throws -> [(bytes: [UInt8], from: Endpoint)] {
        var out: [(bytes: [UInt8], from: Endpoint)] = []
        while out.count < count {
            let got = try receive(timeoutMs: timeoutMs)
            if got.isEmpty { break }
            out += got
        }
        return out
    }
}

/// The contract itself. Each check takes a factory and makes its own binds in a fresh namespace.
enum BindContract {
    /// Datagrams of many sizes, one per send call, from A to B and back; bytes and source must match.
    static func singleDatagramsBothWays(_ f: BindFactory) throws {
        let binds = try f.make(2)
        defer { binds.forEach { $0.close() } }
        let (a, b) = (binds[0], binds[1])
        var sizes = [0, 1, 2, 3, 4, 20, 32, 63, 64, 92, 148, 512, 1279, 1280, 1420, 1472, 1500, 2000, 2048]
        if offloadState(b).gro { sizes += [4096, 9000, 30000, 65000] }
        for (from, to) in [(a, b), (b, a)] {
            let rx = Receiver(to)
            let target = Endpoint(address: loopback4, port: to.port)
            for (i, size) in sizes.enumerated() {
                let d = datagram(i, size: size)
                XCTAssertEqual(try sendAll(from, [d], to: [target]), 1, "\(f): send \(size) bytes")
                let got = try rx.collect(1)
                XCTAssertEqual(got.count, 1, "\(f): \(size) bytes not received")
                guard let first = got.first else { continue }
                XCTAssertTrue(first.bytes == d, "\(f): \(size)-byte datagram altered (got \(first.bytes.count) bytes)")
                XCTAssertEqual(first.from, Endpoint(address: loopback4, port: from.port), "\(f)")
            }
            XCTAssertEqual(rx.truncated, 0, "\(f)")
        }
    }

    /// 200 datagrams (runs of ten equal sizes, so some leave segmented) in two send calls arrive complete and in
    /// order over several receive calls of at most 8 messages.
    static func burstInOrder(_ f: BindFactory) throws {
        let binds = try f.make(2)
        defer { binds.forEach { $0.close() } }
        let (a, b) = (binds[0], binds[1])
        let target = Endpoint(address: loopback4, port: b.port)
        let burst = (0..<200).map { datagram($0, size: 100 + ($0 / 10) * 37) }
        var sent = 0
        for half in [burst[0..<100], burst[100..<200]] {
            sent += try sendAll(a, Array(half), to: Array(repeating: target, count: half.count))
        }
        XCTAssertEqual(sent, 200, "\(f)")
        let rx = Receiver(b, bufferCount: 8)
        let got = try rx.collect(200)
        XCTAssertEqual(got.count, 200, "\(f)")
        XCTAssertTrue(got.map(\.bytes) == burst, "\(f): burst reordered, altered or lost")
        XCTAssertGreaterThan(rx.calls, 1, "\(f)")
        XCTAssertEqual(rx.truncated, 0, "\(f)")
    }

    /// 40 × 1400 bytes to one endpoint in one call: one segmented send where GSO works, and with GRO one
    /// message on the receiver, split back into the same 40 datagrams.
    static func segmentedRun(_ f: BindFactory) throws {
        let binds = try f.make(2)
        defer { binds.forEach { $0.close() } }
        let (a, b) = (binds[0], binds[1])
        let run = (0..<40).map { datagram(1000 + $0, size: 1400) }
        XCTAssertEqual(try sendAll(a, run, to: Array(repeating: Endpoint(address: loopback4, port: b.port), count: 40)),
                       40, "\(f)")
        let rx = Receiver(b, bufferCount: 8)
        let got = try rx.collect(40)
        XCTAssertEqual(got.count, 40, "\(f)")
        for (i, d) in got.enumerated() where i < run.count {
            XCTAssertTrue(d.bytes == run[i], "\(f): datagram \(i) altered (\(d.bytes.count) bytes)")
            XCTAssertEqual(d.from, Endpoint(address: loopback4, port: a.port), "\(f)")
        }
        if offloadState(a).gso && offloadState(b).gro {
            XCTAssertEqual(rx.calls, 1, "\(f): a GSO send should reach a GRO socket as one message")
        }
    }

    /// Each datagram leaves with its own outer TOS (ECN and DSCP bits), over IPv4 and IPv6, also inside a
    /// segmentable run whose TOS changes midway; the receiver reports each one's TOS and a kernel timestamp.
    static func tosAndTimestamps(_ f: BindFactory) throws {
        let binds = try f.make(2)
        defer { binds.forEach { $0.close() } }
        let (a, b) = (binds[0], binds[1])
        let values: [UInt8] = [0x00, 0x01, 0x02, 0x03, 0x88, 0xb8, 0xbb, 0x02, 0x02, 0x02, 0x03, 0x03]
        for address in [loopback4, loopback6] {
            let rx = Receiver(b, bufferCount: 16)
            let target = Endpoint(address: address, port: b.port)
            let run = values.indices.map { datagram(500 + $0, size: 1200) }
            let before = realtimeNanoseconds()
            XCTAssertEqual(try sendAll(a, run, to: Array(repeating: target, count: run.count), tos: values),
                           run.count, "\(f) \(address)")
            let got = try rx.collect(run.count)
            let after = realtimeNanoseconds()
            XCTAssertEqual(got.map(\.bytes), run, "\(f) \(address): datagrams altered or reordered")
            XCTAssertEqual(rx.receivedTOS, values, "\(f) \(address): outer TOS not carried per datagram")
            for stamp in rx.receivedStamps {
                XCTAssertTrue(stamp >= before && stamp <= after, "\(f) \(address): kernel timestamp \(stamp) outside [\(before), \(after)]")
            }
        }
    }

    /// One send call to two receivers over IPv4 and IPv6, interleaved with same-endpoint runs: each receiver
    /// gets its own datagrams, per source address in order.
    static func mixedEndpoints(_ f: BindFactory) throws {
        let binds = try f.make(3)
        defer { binds.forEach { $0.close() } }
        let (a, b, c) = (binds[0], binds[1], binds[2])
        let targets = [Endpoint(address: loopback4, port: b.port), Endpoint(address: loopback6, port: b.port),
                       Endpoint(address: loopback4, port: c.port), Endpoint(address: loopback6, port: c.port)]
        var datagrams: [[UInt8]] = []
        var to: [Endpoint] = []
        for i in 0..<96 {
            // Runs of three to one endpoint, then the next endpoint.
            let t = targets[(i / 3) % targets.count]
            datagrams.append(datagram(i, size: 200 + (i % 3 == 2 ? 50 : 300)))
            to.append(t)
        }
        XCTAssertEqual(try sendAll(a, datagrams, to: to), datagrams.count, "\(f)")
        for receiver in [b, c] {
            let expected = zip(datagrams, to).filter { $0.1.port == receiver.port }
            let got = try Receiver(receiver).collect(expected.count)
            XCTAssertEqual(got.count, expected.count, "\(f)")
            for family in [loopback4, loopback6] {
                let want = expected.filter { $0.1.address == family }.map(\.0)
                let have = got.filter { $0.from == Endpoint(address: family, port: a.port) }.map(\.bytes)
                XCTAssertTrue(have == want, "\(f): datagrams to port \(receiver.port) over \(family) differ")
            }
        }
    }

    /// IPv4 sources come back v4-mapped, IPv6 ones as IPv6; both can be answered at the address received.
    static func ipv4AndIPv6(_ f: BindFactory) throws {
        let binds = try f.make(2)
        defer { binds.forEach { $0.close() } }
        let (a, b) = (binds[0], binds[1])
        let rxA = Receiver(a), rxB = Receiver(b)
        for (n, address) in [loopback4, loopback6].enumerated() {
            let ping = datagram(n, size: 120)
            XCTAssertEqual(try sendAll(a, [ping], to: [Endpoint(address: address, port: b.port)]), 1, "\(f)")
            guard let got = try rxB.collect(1).first else { XCTFail("\(f): nothing over \(address)"); continue }
            XCTAssertTrue(got.bytes == ping, "\(f)")
            XCTAssertEqual(got.from.isV4, address.isV4, "\(f)")
            XCTAssertEqual(got.from.address, address, "\(f)")
            XCTAssertEqual(got.from.port, a.port, "\(f)")
            // Answer where it came from, with the control-path send.
            let pong = datagram(100 + n, size: 90)
            try b.send(pong, to: got.from)
            guard let back = try rxA.collect(1).first else { XCTFail("\(f): no reply over \(address)"); continue }
            XCTAssertTrue(back.bytes == pong, "\(f)")
            XCTAssertEqual(back.from, Endpoint(address: address, port: b.port), "\(f)")
        }
    }

    /// A datagram larger than the receive buffer is dropped and counted; the next one still arrives.
    static func truncation(_ f: BindFactory) throws {
        let binds = try f.make(2)
        defer { binds.forEach { $0.close() } }
        let (a, b) = (binds[0], binds[1])
        let target = Endpoint(address: loopback4, port: b.port)
        // A caller buffer smaller than the bind asks for, and (without GRO) a datagram beyond the bind's size.
        var cases = [(capacity: 1024, big: 1500)]
        if !offloadState(b).gro { cases.append((b.receiveBufferSize, b.receiveBufferSize + 1000)) }
        for (n, c) in cases.enumerated() {
            let rx = Receiver(b, bufferCount: 4, capacity: c.capacity)
            XCTAssertEqual(try sendAll(a, [datagram(n, size: c.big)], to: [target]), 1, "\(f)")
            let small = datagram(50 + n, size: 100)
            XCTAssertEqual(try sendAll(a, [small], to: [target]), 1, "\(f)")
            let got = try rx.collect(1)
            XCTAssertEqual(got.count, 1, "\(f): datagram after the truncated one lost")
            XCTAssertTrue(got.first?.bytes == small, "\(f)")
            XCTAssertEqual(rx.truncated, 1, "\(f): \(c.big) bytes into \(c.capacity)")
        }
    }

    /// 9000-byte datagrams (a jumbo tunnel MTU) between small ones arrive whole and in order, nothing truncated.
    static func jumbo(_ f: BindFactory) throws {
        let binds = try f.make(2)
        defer { binds.forEach { $0.close() } }
        let (a, b) = (binds[0], binds[1])
        let target = Endpoint(address: loopback4, port: b.port)
        let rx = Receiver(b, bufferCount: 4, capacity: max(b.receiveBufferSize, 9064))
        let sent = [datagram(1, size: 9000), datagram(2, size: 100), datagram(3, size: 9000)]
        for d in sent { XCTAssertEqual(try sendAll(a, [d], to: [target]), 1, "\(f)") }
        let got = try rx.collect(sent.count)
        XCTAssertEqual(got.map(\.bytes.count), sent.map(\.count), "\(f)")
        XCTAssertTrue(got.map(\.bytes) == sent, "\(f): payloads differ")
        XCTAssertEqual(rx.truncated, 0, "\(f)")
    }

    /// wake() ends a receive blocked with a long timeout, promptly; a wake before the call ends the next call.
    /// The blocked receive runs on another thread than the calls around it (UringBind moves its ring).
    static func wake(_ f: BindFactory) throws {
        let binds = try f.make(2)
        defer { binds.forEach { $0.close() } }
        let (a, b) = (binds[0], binds[1])
        let rx = Receiver(b)
        XCTAssertEqual(try rx.receive(timeoutMs: 0).count, 0, "\(f)")

        let outcome = WakeOutcome()
        let receiverBind = b
        let waiter = PipelineThread(name: "vf-test-wait") {
            let r = Receiver(receiverBind)
            let n = (try? r.receive(timeoutMs: 30_000).count) ?? -1
            outcome.finish(count: n)
        }
        usleep(100_000)  // let the waiter block (if it has not yet, wake() still ends its call at once)
        let woke = SystemClock().now()
        b.wake()
        waiter.join()
        XCTAssertEqual(outcome.count, 0, "\(f): a woken receive returns 0")
        let ms = Double(outcome.finished - woke) / 1e6
        XCTAssertLessThan(ms, 500, "\(f): wake took \(ms) ms")

        // Woken before the call: the next receive returns at once.
        b.wake()
        let start = SystemClock().now()
        XCTAssertEqual(try rx.receive(timeoutMs: 30_000).count, 0, "\(f)")
        XCTAssertLessThan(Double(SystemClock().now() - start) / 1e6, 500, "\(f)")

        // And the bind still receives, back on this thread.
        let d = datagram(7, size: 333)
        XCTAssertEqual(try sendAll(a, [d], to: [Endpoint(address: loopback6, port: b.port)]), 1, "\(f)")
        XCTAssertTrue(try rx.collect(1).first?.bytes == d, "\(f)")
    }

    /// With nothing to receive, a call returns 0 when its timeout passes (0: at once).
    static func timeout(_ f: BindFactory) throws {
        let binds = try f.make(1)
        defer { binds.forEach { $0.close() } }
        let rx = Receiver(binds[0])
        XCTAssertEqual(try rx.receive(timeoutMs: 0).count, 0, "\(f)")
        let start = SystemClock().now()
        XCTAssertEqual(try rx.receive(timeoutMs: 50).count, 0, "\(f)")
        XCTAssertGreaterThanOrEqual(SystemClock().now() - start, 40_000_000, "\(f): returned before the timeout")
    }

    private final class WakeOutcome: @unchecked Sendable {  // written by the waiter before join, read after
        private(set) var count = -2
        private(set) var finished: UInt64 = 0
        func finish(count: Int) { self.count = count; finished = SystemClock().now() }
    }
}
