// Two whole devices over an in-memory network with batches larger than one: handshake, data both ways,
// per-peer order across parallel crypto workers, padding trimmed, IPv6 inside.
import Crypto
import Dataplane
import TestSupport
import XCTest

final class DevicePairTests: XCTestCase {
    func testPacketsFlowBothWaysInOrder() throws {
        let pair = try DevicePair(threads: 3)
        pair.start()
        defer { pair.stop() }
        // The first packet is staged until the handshake completes.
        pair.tunA.inject([DevicePair.packet(0)])
        XCTAssertEqual(pair.tunB.collect(atLeast: 1), [DevicePair.packet(0)])
        // A burst far larger than one batch, of mixed sizes: every packet arrives once, in order, unpadded.
        let burst = (1...1000).map { DevicePair.packet($0, size: 1 + ($0 * 37) % 1300) }
        pair.tunA.inject(burst)
        let got = pair.tunB.collect(atLeast: burst.count, timeoutNanoseconds: 20_000_000_000)
        XCTAssertEqual(got.count, burst.count)
        XCTAssertTrue(got == burst, "packets reordered, altered or lost")
        // And back from B to A, once B has confirmed the session.
        let back = (1...300).map { DevicePair.packet($0, fromA: false) }
        pair.tunB.inject(back)
        XCTAssertTrue(pair.tunA.collect(atLeast: back.count) == back)
        XCTAssertEqual(pair.a.counters[.handshakesCompleted], 1)
        XCTAssertEqual(pair.b.counters[.handshakesCompleted], 1)
        XCTAssertEqual(pair.b.counters[.rxDropBadMac], 0)
        XCTAssertEqual(pair.b.counters[.rxDropReplay], 0)
    }

    func testIPv6InnerAndPresharedKey() throws {
        let pair = try DevicePair(threads: 2, presharedKey: SecretKey.random())
        pair.start()
        defer { pair.stop() }
        let p6 = PacketBuilder.ipv6UDP(src: DevicePair.innerA6, dst: DevicePair.innerB6, payload: Array(repeating: 7, count: 333))
        pair.tunA.inject([p6])
        XCTAssertEqual(pair.tunB.collect(atLeast: 1), [p6])
    }

    func testMismatchedPresharedKeyNeverCompletes() throws {
        // Each side gets a different PSK: the response must not authenticate.
        let network = ChannelNetwork()
        let kA = X25519.generatePrivateKey(), kB = X25519.generatePrivateKey()
        let eA = Endpoint(address: IPAddress("198.18.0.1")!, port: 1), eB = Endpoint(address: IPAddress("198.18.0.2")!, port: 2)
        let tA = ChannelTun(), tB = ChannelTun()
        let a = try Device(config: DeviceConfiguration(privateKey: kA, threads: 1, peers: [
            .init(publicKey: X25519.publicKey(for: kB), presharedKey: SecretKey.random(),
                  allowedIPs: [IPPrefix("198.19.0.2/32")!], endpoint: eB)]),
            tun: tA, bind: network.bind(at: eA), logger: .init(label: "A"))
        let b = try Device(config: DeviceConfiguration(privateKey: kB, threads: 1, peers: [
            .init(publicKey: X25519.publicKey(for: kA), presharedKey: SecretKey.random(),
                  allowedIPs: [IPPrefix("198.19.0.1/32")!])]),
            tun: tB, bind: network.bind(at: eB), logger: .init(label: "B"))
        a.start(); b.start()
        defer { a.stop(); b.stop() }
        tA.inject([DevicePair.packet(1)])
        XCTAssertEqual(tB.collect(atLeast: 1, timeoutNanoseconds: 1_000_000_000).count, 0)
        XCTAssertEqual(a.counters[.rxDropBadResponse], 1)
        XCTAssertEqual(a.counters[.handshakesCompleted], 0)
    }

    func testDisallowedSourceIsDropped() throws {
        let pair = try DevicePair()
        pair.start()
        defer { pair.stop() }
        pair.tunA.inject([DevicePair.packet(1)])
        XCTAssertEqual(pair.tunB.collect(atLeast: 1).count, 1)
        // A sends a packet whose inner source is not in A's AllowedIPs at B.
        let spoofed = PacketBuilder.ipv4UDP(src: 0xC613_0063, dst: DevicePair.innerB, payload: [1, 2, 3])
        pair.tunA.inject([spoofed, DevicePair.packet(2)])
        XCTAssertEqual(pair.tunB.collect(atLeast: 1), [DevicePair.packet(2)])
        XCTAssertEqual(pair.b.counters[.rxDropDisallowedSource], 1)
    }
}
