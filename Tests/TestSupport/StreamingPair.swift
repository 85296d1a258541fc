// Two devices streaming one fixed packet from A to B over a RingNetwork, between GeneratorTuns: a set-up whose
// test doubles allocate nothing per packet, so whatever allocates in steady state is the data path itself.
// Addresses as in DevicePair: A is 198.19.0.1, B is 198.19.0.2.
//
// Modes pick which half of the data path runs while packets are pushed:
//   both     A reads, routes, seals and sends; B receives, opens, checks and writes.
//   send     only A: B's bind counts A's transport messages and throws them away (handshakes still pass).
//   receive  only B: A is stopped, and a TransportSource seals on A's keypair and sends to B.
import Crypto
import Dataplane
import Logging

public final class StreamingPair: @unchecked Sendable {  // driven by one thread at a time
    public enum Mode: String, CaseIterable, Sendable {
        case both, send, receive
    }

    public enum SetupError: Error, CustomStringConvertible {
        case noHandshake
        case stalled(String)
        public var description: String {
            switch self {
            case .noHandshake: return "the handshake between A and B did not complete"
            case .stalled(let what): return "packets stopped flowing: \(what)"
            }
        }
    }

    public let network = RingNetwork()
    public let a: Device
    public let b: Device
    public let tunA: GeneratorTun
    public let tunB: GeneratorTun
    public let bindA: RingBind
    public let bindB: RingBind
    public let endpointA = Endpoint(address: IPAddress("198.18.0.1")!, port: 51820)
    public let endpointB = Endpoint(address: IPAddress("198.18.0.2")!, port: 51821)
    /// The inner packet A sends.
    public let packet: [UInt8]
    public private(set) var mode = Mode.both
    private var source: TransportSource?
    private let mtu: Int
    /// Packets B has written or discarded so far, as the counter `push` waits on.
    private var arrived = 0

    /// `threads`: crypto workers per device. `packetSize`: bytes of the inner IPv4/UDP packet. `canary`: B's TUN
    /// allocates once per packet it is given (to check that an allocation counter sees the device's threads).
    public init(threads: Int, packetSize: Int = 512, mtu: Int = 1420, canary: Bool = false) throws {
        precondition(packetSize >= 28 && packetSize <= mtu)
        self.mtu = mtu
        let keyA = X25519.generatePrivateKey()
        let keyB = X25519.generatePrivateKey()
        packet = PacketBuilder.ipv4UDP(src: DevicePair.innerA, dst: DevicePair.innerB,
                                       payload: [UInt8](repeating: 0x5a, count: packetSize - 28))
        let reply = PacketBuilder.ipv4UDP(src: DevicePair.innerB, dst: DevicePair.innerA,
                                          payload: [UInt8](repeating: 0xa5, count: packetSize - 28))
        tunA = GeneratorTun(name: "genA", packet: packet, expect: reply)
        tunB = GeneratorTun(name: "genB", packet: reply, expect: packet, canary: canary)
        bindA = network.bind(at: endpointA)
        bindB = network.bind(at: endpointB)
        var configA = DeviceConfiguration(privateKey: keyA, mtu: mtu, threads: threads, peers: [
            .init(publicKey: X25519.publicKey(for: keyB), allowedIPs: [IPPrefix("198.19.0.2/32")!],
                  endpoint: endpointB),
        ])
        var configB = DeviceConfiguration(privateKey: keyB, mtu: mtu, threads: threads, peers: [
            .init(publicKey: X25519.publicKey(for: keyA), allowedIPs: [IPPrefix("198.19.0.1/32")!]),
        ])
        configA.aead = .libsodium
        configB.aead = .libsodium
        // The pushes below come in bursts of `chunk` packets; a CoDel target this long keeps fq_codel from
        // dropping inside a burst, so the path measured is the queueing path carrying every packet.
        configA.codelTarget = 2_000_000_000
        configA.codelInterval = 20_000_000_000
        var logA = Logger(label: "A"); logA.logLevel = .warning
        var logB = Logger(label: "B"); logB.logLevel = .warning
        a = try Device(config: configA, tun: tunA, bind: bindA, logger: logA)
        b = try Device(config: configB, tun: tunB, bind: bindB, logger: logB)
    }

    /// Starts both devices, completes the handshake with a first packet, streams `warmup` packets A → B, then
    /// switches to `mode`.
    public func start(mode: Mode, warmup: Int, timeoutNanoseconds: UInt64 = 30_000_000_000) throws {
        a.start()
        b.start()
        tunA.release(1)
        guard tunB.waitForWritten(atLeast: 1, timeoutNanoseconds: timeoutNanoseconds) else {
            throw SetupError.noHandshake
        }
        arrived = 1
        guard push(warmup, timeoutNanoseconds: timeoutNanoseconds) else { throw SetupError.stalled("warm-up") }
        switch mode {
        case .both:
            break
        case .send:
            bindB.discardsTransport = true
            arrived = bindB.counts.discarded
        case .receive:
            guard let keypair = a.peers[0].lock.withLock({ a.peers[0].keypairs.current }) else {
                throw SetupError.noHandshake
            }
            a.stop()
            source = TransportSource(keypair: keypair, packet: packet, mtu: mtu, from: bindA, to: endpointB)
        }
        self.mode = mode
        guard push(warmup, timeoutNanoseconds: timeoutNanoseconds) else {
            throw SetupError.stalled("warm-up in mode \(mode.rawValue)")
        }
    }

    /// Pushes `count` packets through the running half (or both) and waits until B has taken them all.
    /// Allocates nothing itself. False on timeout.
    public func push(_ count: Int, timeoutNanoseconds: UInt64 = 30_000_000_000) -> Bool {
        // Release in chunks below the per-peer queue limit, each accounted for before the next.
        var left = count
        while left > 0 {
            let n = min(left, StreamingPair.chunk)
            left -= n
            arrived += n
            let ok: Bool
            switch mode {
            case .both:
                tunA.release(n)
                ok = waitAllowingQueueDrops(timeoutNanoseconds) { tunB.waitForWritten(atLeast: $0, timeoutNanoseconds: $1) }
            case .send:
                tunA.release(n)
                ok = waitAllowingQueueDrops(timeoutNanoseconds) { bindB.waitForDiscarded(atLeast: $0, timeoutNanoseconds: $1) }
            case .receive:
                guard let source, source.send(n) == n else { return false }
                ok = tunB.waitForWritten(atLeast: arrived, timeoutNanoseconds: timeoutNanoseconds)
            }
            if !ok { return false }
        }
        return true
    }

    /// Packets released at once: well below fq_codel's per-peer limit (4096).
    static let chunk = 2048

    /// Waits until every pushed packet either arrived or was dropped by A's fq_codel (CoDel or the queue limit):
    /// a burst pushed all at once builds a standing queue, and managing it is the send path's job.
    private func waitAllowingQueueDrops(_ timeoutNanoseconds: UInt64, _ wait: (Int, UInt64) -> Bool) -> Bool {
        let deadline = SystemClock().now() + timeoutNanoseconds
        while true {
            let drops = Int(a.counters[.txDropCodel] + a.counters[.txDropAqmLimit])
            if wait(arrived - drops, 10_000_000) { return true }
            if SystemClock().now() >= deadline { return false }
        }
    }

    public func stop() {
        a.stop()
        b.stop()
    }
}
