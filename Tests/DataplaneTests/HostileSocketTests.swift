// The datagrams the channel bind can only imitate, through a real UDP socket (on the loopback of a private network
// namespace): an empty datagram and the largest ones UDP can carry.
import Crypto
import Glibc
import Dataplane
import Logging
import TestSupport
import XCTest

final class HostileSocketTests: XCTestCase {
    func testEmptyAndOversizedDatagramsOnARealSocket() throws {
        if getuid() != 0 { throw XCTSkip("needs root to create a private network namespace for real sockets") }
        // Both sockets live in a fresh network namespace of their own (its loopback only).
        let binds = try BindFactory(backend: .mmsg, offloads: true).make(2)
        let bind = binds[0], sender = binds[1]
        defer { bind.close(); sender.close() }
        let peerKey = X25519.publicKey(for: X25519.generatePrivateKey())
        var config = DeviceConfiguration(privateKey: X25519.generatePrivateKey(), threads: 1, peers: [
            .init(publicKey: peerKey, allowedIPs: [IPPrefix("198.19.0.1/32")!]),
        ])
        config.batchesPerDirection = 4
        var logger = Logger(label: "sock")
        logger.logLevel = .warning
        let device = try Device(config: config, tun: ChannelTun(), bind: bind, clock: FakeClock(), logger: logger)
        device.start()
        defer { device.stop() }

        let target = Endpoint(address: IPAddress("127.0.0.1")!, port: bind.port)
        let datagrams: [([UInt8], Counter)] = [
            ([], .rxDropShort),
            ([4, 0, 0], .rxDropShort),
            // Receive buffers hold a whole UDP GRO train (64 KiB), so even the largest datagram arrives whole
            // and is judged by its header.
            (Wire.message(type: 4, size: 9000), .rxDropUnknownIndex),
            (Wire.message(type: 1, size: 65000), .rxDropBadSize),
            (Wire.message(type: 4, size: 65507), .rxDropUnknownIndex),
            (Wire.message(type: 1, size: 147), .rxDropBadSize),
            (Wire.message(type: 9, size: 64), .rxDropBadType),
            (Wire.message(type: 4, size: 64), .rxDropUnknownIndex),
        ]
        var expected: [Counter: UInt64] = [:]
        for (d, reason) in datagrams {
            try sender.send(d, to: target)
            expected[reason, default: 0] += 1
        }
        let arrived = waitUntil {
            expected.allSatisfy { device.counters[$0.key] == $0.value }
        }
        XCTAssertTrue(arrived, "counters: \(device.counters.snapshot().filter { $0.1 != 0 })")
        XCTAssertEqual(device.counters.totalDrops, UInt64(datagrams.count))
    }
}
