// Two devices that talk over a ChannelNetwork: A is 198.19.0.1 / fd19::1, B is 198.19.0.2 / fd19::2.
import Crypto
import Dataplane
import Logging

public final class DevicePair: @unchecked Sendable {  // built once by the test thread, then read-only
    public let network = ChannelNetwork()
    public let a: Device
    public let b: Device
    public let tunA: ChannelTun
    public let tunB: ChannelTun
    public let bindA: ChannelBind
    public let bindB: ChannelBind
    public let endpointA = Endpoint(address: IPAddress("198.18.0.1")!, port: 51820)
    public let endpointB = Endpoint(address: IPAddress("198.18.0.2")!, port: 51821)
    public static let innerA: UInt32 = 0xC613_0001   // 198.19.0.1
    public static let innerB: UInt32 = 0xC613_0002   // 198.19.0.2
    public static let innerA6: (UInt64, UInt64) = (0xfd19_0000_0000_0000, 1)
    public static let innerB6: (UInt64, UInt64) = (0xfd19_0000_0000_0000, 2)

    /// `bEndpointKnown`: whether B is configured with A's endpoint (otherwise only A can initiate).
    public init(threads: Int = 2, batchSize: Int = PacketBatch.capacity, presharedKey: SecretKey? = nil,
                clock: any MonotonicClock = SystemClock(), bEndpointKnown: Bool = false,
                rekeyAfterTime: UInt64? = nil, dscp: DSCPMode = .zero, aqm: Bool = true,
                rate: Rate? = nil, placements: [WorkerPlacement]? = nil) throws {
        let keyA = X25519.generatePrivateKey()
        let keyB = X25519.generatePrivateKey()
        tunA = ChannelTun(name: "chanA", batchSize: batchSize)
        tunB = ChannelTun(name: "chanB", batchSize: batchSize)
        bindA = network.bind(at: endpointA, batchSize: batchSize)
        bindB = network.bind(at: endpointB, batchSize: batchSize)
        var configA = DeviceConfiguration(privateKey: keyA, threads: threads, peers: [
            .init(publicKey: X25519.publicKey(for: keyB), presharedKey: presharedKey,
                  allowedIPs: [IPPrefix("198.19.0.2/32")!, IPPrefix("fd19::2/128")!], endpoint: endpointB),
        ])
        var configB = DeviceConfiguration(privateKey: keyB, threads: threads, peers: [
            .init(publicKey: X25519.publicKey(for: keyA), presharedKey: presharedKey,
                  allowedIPs: [IPPrefix("198.19.0.1/32")!, IPPrefix("fd19::1/128")!],
                  endpoint: bEndpointKnown ? endpointA : nil),
        ])
        if let r = rekeyAfterTime { configA.rekeyAfterTime = r; configB.rekeyAfterTime = r }
        configA.dscp = dscp
        configB.dscp = dscp
        configA.aqm = aqm
        configA.rate = rate
        configB.aqm = aqm
        configA.placements = placements
        configB.placements = placements
        configA.batchesPerDirection = 8
        configB.batchesPerDirection = 8
        var logA = Logger(label: "A"); logA.logLevel = .warning
        var logB = Logger(label: "B"); logB.logLevel = .warning
        a = try Device(config: configA, tun: tunA, bind: bindA, clock: clock, logger: logA)
        b = try Device(config: configB, tun: tunB, bind: bindB, clock: clock, logger: logB)
    }

    public func start() { a.start(); b.start() }
    public func stop() { a.stop(); b.stop() }

    /// A numbered IPv4 UDP packet from A's inner address to B's (or the reverse).
    public static func packet(_ n: Int, fromA: Bool = true, size: Int = 100) -> [UInt8] {
        var payload = [UInt8](repeating: UInt8(truncatingIfNeeded: n), count: max(size, 4))
        payload[0] = UInt8(truncatingIfNeeded: n >> 24); payload[1] = UInt8(truncatingIfNeeded: n >> 16)
        payload[2] = UInt8(truncatingIfNeeded: n >> 8); payload[3] = UInt8(truncatingIfNeeded: n)
        return PacketBuilder.ipv4UDP(src: fromA ? innerA : innerB, dst: fromA ? innerB : innerA, payload: payload)
    }
}
