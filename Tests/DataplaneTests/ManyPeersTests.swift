// A device configured with 10,000 peers starts, carries traffic to the one peer that answers, and keeps the
// idle peers' queueing state small (fq_codel tables are allocated on a peer's first packet only).
import Crypto
import Dataplane
import Logging
import TestSupport
import XCTest

final class ManyPeersTests: XCTestCase {
    func testTenThousandPeersStartAndRun() throws {
        let network = ChannelNetwork()
        let keyA = X25519.generatePrivateKey(), keyB = X25519.generatePrivateKey()
        let endpointA = Endpoint(address: IPAddress("198.18.0.1")!, port: 51820)
        let endpointB = Endpoint(address: IPAddress("198.18.0.2")!, port: 51821)
        // 9,999 silent peers, each owning one /32 in 198.19.128.0/17 and beyond, then B.
        var peers: [DeviceConfiguration.PeerSetup] = []
        for i in 0..<9_999 {
            let address = IPAddress.v4(0xC613_8000 + UInt32(i))
            peers.append(.init(publicKey: X25519.publicKey(for: X25519.generatePrivateKey()),
                               allowedIPs: [IPPrefix(address: address, length: 32)],
                               endpoint: Endpoint(address: IPAddress.v4(0xC612_4000 + UInt32(i)), port: 51820)))
        }
        peers.append(.init(publicKey: X25519.publicKey(for: keyB), allowedIPs: [IPPrefix("198.19.0.2/32")!],
                           endpoint: endpointB))
        var logger = Logger(label: "many")
        logger.logLevel = .warning
        let tunA = ChannelTun(name: "manyA"), tunB = ChannelTun(name: "manyB")
        var configA = DeviceConfiguration(privateKey: keyA, threads: 2, peers: peers)
        configA.batchesPerDirection = 8
        let a = try Device(config: configA, tun: tunA, bind: network.bind(at: endpointA), logger: logger)
        let b = try Device(config: DeviceConfiguration(privateKey: keyB, threads: 1, peers: [
            .init(publicKey: X25519.publicKey(for: keyA), allowedIPs: [IPPrefix("198.19.0.1/32")!]),
        ]), tun: tunB, bind: network.bind(at: endpointB), logger: logger)
        XCTAssertEqual(a.peers.count, 10_000)
        a.start(); b.start()
        defer { a.stop(); b.stop() }
        // First packet: staged until the handshake with the 10,000th peer completes (at most 128 wait, as in
        // WireGuard), then a burst on the session.
        tunA.inject([DevicePair.packet(9999)])
        XCTAssertEqual(tunB.collect(atLeast: 1), [DevicePair.packet(9999)])
        let burst = (0..<500).map { DevicePair.packet($0) }
        tunA.inject(burst)
        let got = tunB.collect(atLeast: burst.count, timeoutNanoseconds: 20_000_000_000)
        XCTAssertTrue(got == burst, "got \(got.count); A: \(a.counters.snapshot().filter { $0.1 != 0 }); B: \(b.counters.snapshot().filter { $0.1 != 0 })")
        let back = (0..<100).map { DevicePair.packet($0, fromA: false) }
        tunB.inject(back)
        XCTAssertTrue(tunA.collect(atLeast: back.count) == back)
        XCTAssertEqual(a.counters[.handshakesCompleted], 1)
    }
}
