// The allocation-free test doubles the benchmarks drive: GeneratorTun, RingNetwork, TransportSource, and the
// StreamingPair built from them, in each of its modes.
import Dataplane
import Foundation
import TestSupport
import XCTest

final class StreamingPairTests: XCTestCase {
    let second: UInt64 = 1_000_000_000

    /// Scratch buffers as a device's batch would hand them over.
    final class Buffers: @unchecked Sendable {  // each test uses one from one thread at a time
        let count: Int
        let slab: UnsafeMutableRawPointer
        let pointers: UnsafeMutablePointer<UnsafeMutableRawPointer>
        let packets: UnsafeMutablePointer<UnsafeMutableRawPointer>
        let lengths: UnsafeMutablePointer<UInt32>
        let endpoints: UnsafeMutablePointer<Endpoint>
        let tos: UnsafeMutablePointer<UInt8>
        let stamps: UnsafeMutablePointer<UInt64>
        init(count: Int, size: Int = 2048) {
            self.count = count
            slab = .allocate(byteCount: count * size, alignment: 16)
            pointers = .allocate(capacity: count)
            for i in 0..<count { pointers[i] = slab + i * size }
            packets = .allocate(capacity: count)
            packets.initialize(repeating: slab, count: count)
            lengths = .allocate(capacity: count)
            lengths.initialize(repeating: 0, count: count)
            endpoints = .allocate(capacity: count)
            tos = .allocate(capacity: count)
            stamps = .allocate(capacity: count)
            endpoints.initialize(repeating: Endpoint(), count: count)
        }
        deinit {
            slab.deallocate(); pointers.deallocate(); packets.deallocate(); lengths.deallocate()
            endpoints.deallocate()
            tos.deallocate()
            stamps.deallocate()
        }
        func bytes(_ i: Int, _ length: Int) -> [UInt8] {
            Array(UnsafeRawBufferPointer(start: pointers[i], count: length))
        }
        func packet(_ i: Int) -> [UInt8] { Array(UnsafeRawBufferPointer(start: packets[i], count: Int(lengths[i]))) }
    }

    func testGeneratorTunReadsOnlyWhatWasReleased() throws {
        let packet = DevicePair.packet(7, size: 200)
        let tun = GeneratorTun(packet: packet, batchSize: 16)
        let b = Buffers(count: 64)
        XCTAssertEqual(try tun.read(b.pointers, capacity: 2048, lengths: b.lengths, count: 64, timeoutMs: 1), 0)
        tun.release(20)
        // At most a batch per call, then the rest, then nothing.
        XCTAssertEqual(try tun.read(b.pointers, capacity: 2048, lengths: b.lengths, count: 64, timeoutMs: 1), 16)
        XCTAssertEqual(try tun.read(b.pointers, capacity: 2048, lengths: b.lengths, count: 64, timeoutMs: 1), 4)
        XCTAssertEqual(try tun.read(b.pointers, capacity: 2048, lengths: b.lengths, count: 64, timeoutMs: 1), 0)
        XCTAssertEqual(Int(b.lengths[3]), packet.count)
        XCTAssertEqual(b.bytes(3, packet.count), packet)
        XCTAssertEqual(tun.packetsRead, 20)
    }

    func testGeneratorTunWakeEndsAWaitingRead() throws {
        let tun = GeneratorTun(packet: DevicePair.packet(1))
        let b = Buffers(count: 4)
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(50)) { tun.wake() }
        let t0 = SystemClock().now()
        XCTAssertEqual(try tun.read(b.pointers, capacity: 2048, lengths: b.lengths, count: 4, timeoutMs: 10_000), 0)
        XCTAssertLessThan(SystemClock().now() - t0, 5 * second)
    }

    func testGeneratorTunSinkCountsAndChecks() {
        let good = DevicePair.packet(1, size: 100)
        let tun = GeneratorTun(packet: good, expect: good)
        let b = Buffers(count: 3)
        for i in 0..<3 {
            good.withUnsafeBytes { b.pointers[i].copyMemory(from: $0.baseAddress!, byteCount: good.count) }
            b.lengths[i] = UInt32(good.count)
        }
        b.pointers[1].storeBytes(of: 0xff, toByteOffset: good.count - 1, as: UInt8.self)  // altered
        b.lengths[2] = UInt32(good.count - 1)  // short
        XCTAssertEqual(tun.write(b.pointers, lengths: b.lengths, count: 3), 3)
        let counts = tun.sinkCounts
        XCTAssertEqual(counts.packets, 3)
        XCTAssertEqual(counts.bytes, 3 * good.count - 1)
        XCTAssertEqual(counts.mismatched, 2)
        XCTAssertTrue(tun.waitForWritten(atLeast: 3, timeoutNanoseconds: 0))
        XCTAssertFalse(tun.waitForWritten(atLeast: 4, timeoutNanoseconds: 10_000_000))
    }

    func testRingBindDeliversInOrderWithSource() throws {
        let net = RingNetwork(slotCount: 8, slotSize: 256)
        let eA = Endpoint(address: IPAddress("198.18.0.1")!, port: 1)
        let eB = Endpoint(address: IPAddress("198.18.0.2")!, port: 2)
        let a = net.bind(at: eA), b = net.bind(at: eB, batchSize: 4)
        try a.send([1, 2, 3], to: eB)
        try a.send([4, 5], to: eB)
        let out = Buffers(count: 4)
        for i in 0..<3 { out.pointers[i].storeBytes(of: UInt8(10 + i), as: UInt8.self); out.lengths[i] = 1 }
        out.endpoints.initialize(repeating: eB, count: 3)
        XCTAssertEqual(try a.send(out.pointers, lengths: out.lengths, endpoints: out.endpoints, count: 3), 3)
        // To nobody: lost, as on a real network.
        XCTAssertNoThrow(try a.send([9], to: Endpoint(address: IPAddress("198.18.0.3")!, port: 3)))

        let r = Buffers(count: 8)
        var truncated = 0
        var got: [[UInt8]] = []
        while got.count < 5 {
            let n = try b.receive(buffers: r.pointers, bufferCount: 8, capacity: 2048, packets: r.packets,
                                  lengths: r.lengths, endpoints: r.endpoints, tos: r.tos, timestamps: r.stamps, maxPackets: 8, truncated: &truncated,
                                  timeoutMs: 100)
            XCTAssertGreaterThan(n, 0)
            XCTAssertLessThanOrEqual(n, 4, "more than the bind's batch size")
            for i in 0..<n {
                got.append(r.packet(i))
                XCTAssertEqual(r.endpoints[i], eA)
            }
        }
        XCTAssertEqual(got, [[1, 2, 3], [4, 5], [10], [11], [12]])
        XCTAssertEqual(truncated, 0)
        XCTAssertEqual(b.counts.delivered, 5)
        XCTAssertEqual(a.counts.sent, 5)
    }

    func testRingBindWaitsForRoomThenDropsWhenNobodyReads() throws {
        let net = RingNetwork(slotCount: 4, slotSize: 64, sendTimeoutMs: 200)
        let eA = Endpoint(address: IPAddress("198.18.0.1")!, port: 1)
        let eB = Endpoint(address: IPAddress("198.18.0.2")!, port: 2)
        let a = net.bind(at: eA), b = net.bind(at: eB)
        let out = Buffers(count: 6)
        for i in 0..<6 { out.lengths[i] = 8 }
        out.endpoints.initialize(repeating: eB, count: 6)
        XCTAssertEqual(try a.send(out.pointers, lengths: out.lengths, endpoints: out.endpoints, count: 6), 4)
        XCTAssertEqual(b.counts.dropped, 2)

        // A reader that frees room lets a blocked sender finish.
        let done = expectation(description: "send")
        DispatchQueue.global().async {
            XCTAssertEqual(try? a.send(out.pointers, lengths: out.lengths, endpoints: out.endpoints, count: 4), 4)
            done.fulfill()
        }
        let r = Buffers(count: 8)
        var truncated = 0
        var received = 0
        let deadline = SystemClock().now() + 5 * second
        while received < 8 && SystemClock().now() < deadline {
            received += try b.receive(buffers: r.pointers, bufferCount: 8, capacity: 2048, packets: r.packets,
                                      lengths: r.lengths, endpoints: r.endpoints, tos: r.tos, timestamps: r.stamps, maxPackets: 8,
                                      truncated: &truncated, timeoutMs: 10)
        }
        wait(for: [done], timeout: 5)
        XCTAssertEqual(received, 8)
    }

    func testRingBindDiscardsTransportButNotHandshakes() throws {
        let net = RingNetwork()
        let eA = Endpoint(address: IPAddress("198.18.0.1")!, port: 1)
        let eB = Endpoint(address: IPAddress("198.18.0.2")!, port: 2)
        let a = net.bind(at: eA), b = net.bind(at: eB)
        b.discardsTransport = true
        try a.send([4, 0, 0, 0, 1, 2, 3], to: eB)
        try a.send([1, 0, 0, 0, 1, 2, 3], to: eB)
        try a.send([4, 0, 0, 0], to: eB)
        XCTAssertTrue(b.waitForDiscarded(atLeast: 2, timeoutNanoseconds: 0))
        XCTAssertEqual(b.counts.delivered, 1)
    }

    func testRingBindCountsOversizedAsTruncatedOrDropped() throws {
        let net = RingNetwork(slotCount: 4, slotSize: 64)
        let eA = Endpoint(address: IPAddress("198.18.0.1")!, port: 1)
        let eB = Endpoint(address: IPAddress("198.18.0.2")!, port: 2)
        let a = net.bind(at: eA), b = net.bind(at: eB)
        try a.send([UInt8](repeating: 1, count: 65), to: eB)   // larger than a slot
        try a.send([UInt8](repeating: 2, count: 40), to: eB)   // larger than the receive buffer below
        try a.send([UInt8](repeating: 3, count: 10), to: eB)
        XCTAssertEqual(b.counts.dropped, 1)
        let r = Buffers(count: 4)
        var truncated = 0
        let n = try b.receive(buffers: r.pointers, bufferCount: 4, capacity: 32, packets: r.packets,
                              lengths: r.lengths, endpoints: r.endpoints, tos: r.tos, timestamps: r.stamps, maxPackets: 4, truncated: &truncated,
                              timeoutMs: 10)
        XCTAssertEqual(n, 1)
        XCTAssertEqual(truncated, 1)
        XCTAssertEqual(r.packet(0), [UInt8](repeating: 3, count: 10))
    }

    func testStreamingPairInEveryMode() throws {
        for mode in StreamingPair.Mode.allCases {
            let pair = try StreamingPair(threads: 2, packetSize: 300)
            defer { pair.stop() }
            try pair.start(mode: mode, warmup: 1000)
            XCTAssertTrue(pair.push(5000), "\(mode)")
            switch mode {
            case .send:
                XCTAssertEqual(pair.bindB.counts.discarded, 6000, "\(mode)")
            case .both, .receive:
                let sink = pair.tunB.sinkCounts
                XCTAssertEqual(sink.packets, 1 + 1000 + 6000, "\(mode)")
                XCTAssertEqual(sink.mismatched, 0, "\(mode)")
            }
            XCTAssertEqual(pair.b.counters.totalDrops, 0, "\(mode)")
            XCTAssertEqual(pair.a.counters.totalDrops, 0, "\(mode)")
        }
    }
}
