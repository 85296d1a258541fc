// Shared pieces of the hostile-input tests: a device pair with one session up and its handshake captured, wire
// builders for forged messages, and the checks every case ends with (exact counter deltas, the tunnel still
// carries data both ways, no endpoint or key moved).
import Crypto
import Dataplane
import TestSupport
import XCTest

struct FixtureError: Error, CustomStringConvertible {
    let description: String
}

/// Counters that move with ordinary traffic; every other counter is compared exactly after each case.
let trafficCounters: Set<Counter> = [.rxBytes, .txBytes, .txPackets, .txExpressPackets, .txInlinePackets,
                                       .rxInlinePackets, .rxExpressPackets]

/// A started DevicePair on a frozen fake clock (no timer ever fires, so nothing moves unless a test sends it)
/// with a session that A initiated, confirmed by one data packet A→B. The network records every datagram.
final class HostileFixture {
    let clock = FakeClock()
    let pair: DevicePair
    /// An address nobody in the pair knows.
    let stranger = Endpoint(address: IPAddress("203.0.113.9")!, port: 40404)
    /// A static key that neither device is configured with.
    let strangerIdentity = StaticIdentity(privateKey: X25519.generatePrivateKey())
    /// The first handshake and the first transport packet (A→B, carrying DevicePair.packet(0)) as captured.
    let initiation: [UInt8]
    let response: [UInt8]
    let firstTransport: [UInt8]
    private var nextProbe = 1_000_000

    init() throws {
        let pair = try DevicePair(clock: clock)
        self.pair = pair
        pair.network.isRecording = true
        pair.start()
        pair.tunA.inject([DevicePair.packet(0)])
        // Senders count a message after their send returns, which may be after the other side has acted on it:
        // wait for every counter of the handshake, so no case sees one of them move late.
        guard pair.tunB.collect(atLeast: 1) == [DevicePair.packet(0)],
              waitUntil({
                  pair.b.counters[.rxPackets] == 1 && pair.b.counters[.txHandshakeResponses] == 1
                      && pair.a.counters[.txHandshakeInitiations] == 1 && pair.a.counters[.txPackets] == 1
              }) else {
            pair.stop()
            throw FixtureError(description: "the first packet did not cross the tunnel")
        }
        let log = pair.network.recorded
        func first(_ type: UInt8, from: Endpoint) -> [UInt8]? {
            log.first(where: { $0.from == from && $0.bytes.first == type })?.bytes
        }
        guard let i = first(1, from: pair.endpointA), let r = first(2, from: pair.endpointB),
              let t = first(4, from: pair.endpointA) else {
            pair.stop()
            throw FixtureError(description: "handshake or first transport packet not captured")
        }
        initiation = i
        response = r
        firstTransport = t
    }

    func stop() { pair.stop() }

    // MARK: Session state

    func currentKeypair(_ device: Device) -> Keypair? {
        let peer = device.peers[0]
        return peer.lock.withLock { peer.keypairs.current }
    }

    func endpoint(_ device: Device) -> Endpoint? {
        let peer = device.peers[0]
        return peer.lock.withLock { peer.endpoint }
    }

    func snapshot(_ device: Device) -> [Counter: UInt64] {
        Dictionary(uniqueKeysWithValues: device.counters.snapshot())
    }

    /// An index that names nothing in `device`'s index table.
    func unknownIndex(in device: Device, seed: UInt32 = 0x5a5a_5a5a) -> UInt32 {
        var i = seed
        while device.indices.lookup(i) != nil { i &+= 0x9e37_79b9 }
        return i
    }

    // MARK: Forging

    /// `inner` sealed with A's current send key under a counter reserved from A's own sequence, so A never
    /// reuses it and B's replay window stays where A's traffic expects it.
    func sealedByA(_ inner: [UInt8]) throws -> [UInt8] {
        let keypair = try XCTUnwrap(currentKeypair(pair.a))
        let counter = try XCTUnwrap(keypair.reserveCounters(1, now: clock.now()))
        return Wire.transport(receiver: keypair.remoteIndex, counter: counter, inner: inner, key: keypair.sendKey)
    }

    /// `msg` (an initiation or response) with a correct mac1 for `device` and no mac2, as anyone who knows
    /// the device's public key can make.
    func withMac1(_ msg: [UInt8], for device: Device) -> [UInt8] {
        var m = msg
        var generator = CookieGenerator()
        let keys = PeerKeys(identity: strangerIdentity, remoteStatic: device.identity.publicKey, presharedKey: nil)
        generator.addMacs(&m, peer: keys, now: clock.now())
        return m
    }

    /// A well-formed initiation to `device` from the stranger's static key (valid mac1, unknown key).
    func strangerInitiation(to device: Device) throws -> [UInt8] {
        let keys = PeerKeys(identity: strangerIdentity, remoteStatic: device.identity.publicKey, presharedKey: nil)
        var handshake = Handshake()
        let msg = try XCTUnwrap(Noise.createInitiation(identity: strangerIdentity, peer: keys, handshake: &handshake,
                                                       localIndex: 0x1234_5678, timestamp: TAI64N.now()))
        return withMac1(msg, for: device)
    }

    /// A genuine initiation from A's static key (the test holds A's private key) stamped a minute ahead of now,
    /// so it is newer than anything A has sent: only the flood limit can refuse it.
    func freshInitiationFromA() throws -> [UInt8] {
        let keys = PeerKeys(identity: pair.a.identity, remoteStatic: pair.b.identity.publicKey, presharedKey: nil)
        var handshake = Handshake()
        let ahead = TAI64N(seconds: TAI64N.now().label - TAI64N.epochLabel + 60, nanoseconds: 0)
        let msg = try XCTUnwrap(Noise.createInitiation(identity: pair.a.identity, peer: keys, handshake: &handshake,
                                                       localIndex: 0x600d_f00d, timestamp: ahead))
        return withMac1(msg, for: pair.b)
    }

    // MARK: Checks

    /// A fresh packet each way must arrive, alone and intact: nothing injected before it reached a TUN. Returns
    /// once both devices have also counted it (rx_packets is added just after the TUN write).
    func assertTunnelWorks(_ label: String, file: StaticString = #filePath, line: UInt = #line) {
        nextProbe += 1
        let (rxA, rxB) = (pair.a.counters[.rxPackets], pair.b.counters[.rxPackets])
        let forward = DevicePair.packet(nextProbe, size: 200)
        pair.tunA.inject([forward])
        XCTAssertEqual(pair.tunB.collect(atLeast: 1), [forward], "\(label): A→B after the case", file: file, line: line)
        let back = DevicePair.packet(nextProbe, fromA: false, size: 200)
        pair.tunB.inject([back])
        XCTAssertEqual(pair.tunA.collect(atLeast: 1), [back], "\(label): B→A after the case", file: file, line: line)
        XCTAssertTrue(waitUntil { pair.a.counters[.rxPackets] > rxA && pair.b.counters[.rxPackets] > rxB },
                      "\(label): probes not counted", file: file, line: line)
    }
}

/// What a case must do to one device's counters, beyond traffic: every counter not named stays unchanged.
enum Expect {
    /// This counter grows by exactly this much.
    case delta(Counter, UInt64)
    /// These counters together grow by exactly this much (for outcomes that depend on timing).
    case sum([Counter], UInt64)

    var counters: [Counter] {
        switch self {
        case .delta(let c, _): return [c]
        case .sum(let cs, _): return cs
        }
    }

    func reached(_ before: [Counter: UInt64], _ after: [Counter: UInt64]) -> Bool {
        grown(before, after) >= target
    }

    var target: UInt64 {
        switch self {
        case .delta(_, let n), .sum(_, let n): return n
        }
    }

    func grown(_ before: [Counter: UInt64], _ after: [Counter: UInt64]) -> UInt64 {
        counters.reduce(0) { $0 + (after[$1]! - before[$1]!) }
    }
}

/// Polls `condition` every millisecond for up to `seconds` (real time). Returns whether it became true.
@discardableResult
func waitUntil(seconds: Double = 5, _ condition: () -> Bool) -> Bool {
    let deadline = SystemClock().now() + UInt64(seconds * 1e9)
    while !condition() {
        if SystemClock().now() >= deadline { return false }
        usleep(1000)
    }
    return true
}

/// Asserts that from `before` to `after` exactly `expects` happened, `extra` counters grew by exactly the given
/// amount, and no other non-traffic counter moved.
func assertCounters(_ label: String, device: String, before: [Counter: UInt64], after: [Counter: UInt64],
                    expects: [Expect], extra: [Counter: UInt64] = [:],
                    file: StaticString = #filePath, line: UInt = #line) {
    var named = Set<Counter>()
    for e in expects {
        named.formUnion(e.counters)
        XCTAssertEqual(e.grown(before, after), e.target, "\(label): \(device) \(e.counters.map(\.name))",
                       file: file, line: line)
    }
    for (c, n) in extra {
        named.insert(c)
        XCTAssertEqual(after[c]! - before[c]!, n, "\(label): \(device) \(c.name)", file: file, line: line)
    }
    for c in Counter.allCases where !named.contains(c) && !trafficCounters.contains(c) {
        XCTAssertEqual(after[c], before[c], "\(label): \(device) \(c.name) moved", file: file, line: line)
    }
}

/// Builders for raw wire messages (little-endian fields, as the protocol lays them out).
enum Wire {
    static func putLE32(_ b: inout [UInt8], _ offset: Int, _ v: UInt32) {
        for i in 0..<4 { b[offset + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }
    }

    static func putLE64(_ b: inout [UInt8], _ offset: Int, _ v: UInt64) {
        for i in 0..<8 { b[offset + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
    }

    static func le32(_ b: [UInt8], _ offset: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(b[offset + $1]) << (8 * UInt32($1)) }
    }

    /// `size` bytes (at least 4) starting with the 32-bit type word, the rest `fill`.
    static func message(type: UInt32, size: Int, fill: UInt8 = 0xa5) -> [UInt8] {
        var b = [UInt8](repeating: fill, count: size)
        putLE32(&b, 0, type)
        return b
    }

    /// A transport message: header, then `inner` sealed under `key` and `counter` (no padding added).
    static func transport(receiver: UInt32, counter: UInt64, inner: [UInt8], key: SecretKey) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: MessageLayout.transportHeaderSize + inner.count + MessageLayout.tagSize)
        putLE32(&b, 0, MessageType.transport.rawValue)
        putLE32(&b, 4, receiver)
        putLE64(&b, 8, counter)
        b.replaceSubrange(16..<16 + inner.count, with: inner)
        b.withUnsafeMutableBytes { out in
            key.withUnsafeBytes { k in
                ChaChaPoly.seal(key: k.baseAddress!, counter: counter, buffer: out.baseAddress! + 16,
                                length: inner.count, ad: nil)
            }
        }
        return b
    }

    /// A transport header with `counter` and random bytes where the ciphertext and tag go.
    static func unsealedTransport(receiver: UInt32, counter: UInt64, bodyLength: Int) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: MessageLayout.transportHeaderSize) + SecureRandom.bytes(bodyLength)
        putLE32(&b, 0, MessageType.transport.rawValue)
        putLE32(&b, 4, receiver)
        putLE64(&b, 8, counter)
        return b
    }

    static func flipped(_ b: [UInt8], byte: Int, bit: Int = 0) -> [UInt8] {
        var c = b
        c[byte] ^= UInt8(1 << bit)
        return c
    }
}
