// The Noise_IKpsk2 handshake end to end with random keys: both sides derive matching transport keys, and every
// way a message or a key can be wrong makes the handshake fail without crashing.
import Crypto
import XCTest
@testable import Dataplane

/// Two devices that know each other: the initiator's view of the responder and the responder's view of the initiator.
private struct Pair {
    let initiator = StaticIdentity(privateKey: X25519.generatePrivateKey())
    let responder = StaticIdentity(privateKey: X25519.generatePrivateKey())
    let responderAsPeer: PeerKeys
    let initiatorAsPeer: PeerKeys

    init(initiatorPSK: SecretKey? = nil, responderPSK: SecretKey? = nil) {
        responderAsPeer = PeerKeys(identity: initiator, remoteStatic: responder.publicKey, presharedKey: initiatorPSK)
        initiatorAsPeer = PeerKeys(identity: responder, remoteStatic: initiator.publicKey, presharedKey: responderPSK)
    }

    /// The responder's peer lookup: it knows exactly one peer.
    func lookup(_ key: PublicKey) -> PeerKeys? { key == initiator.publicKey ? initiatorAsPeer : nil }
}

/// Low-order Curve25519 points (and non-canonical encodings of them): DH with any of them gives zero.
private let lowOrderPoints: [String] = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
]

private let timestamp = TAI64N(seconds: 1_700_000_000, nanoseconds: 123_456_789)

final class NoiseTests: XCTestCase {
    // MARK: Fixed values

    /// The initial chaining key and hash, computed independently with Python's hashlib.blake2s:
    /// ck = BLAKE2s("Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"), h = BLAKE2s(ck ‖ "WireGuard v1 zx2c4 Jason@zx2c4.com").
    func testInitialChainingKeyAndHash() {
        XCTAssertEqual(hex(Noise.initialChainingKey), "60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36")
        XCTAssertEqual(hex(Noise.initialHash), "2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3")
    }

    func testMessageLayout() throws {
        let pair = Pair()
        var hs = Handshake()
        let initiation = try XCTUnwrap(Noise.createInitiation(identity: pair.initiator, peer: pair.responderAsPeer,
                                                              handshake: &hs, localIndex: 0x0403_0201,
                                                              timestamp: timestamp))
        XCTAssertEqual(initiation.count, 148)
        XCTAssertEqual(Array(initiation[0..<8]), [1, 0, 0, 0, 1, 2, 3, 4], "type 1, three zero bytes, sender le32")
        XCTAssertEqual(Array(initiation[116..<148]), [UInt8](repeating: 0, count: 32), "macs are left zero")
        XCTAssertEqual(hs.stage, .createdInitiation)
        XCTAssertEqual(hs.localIndex, 0x0403_0201)

        var rhs = Handshake()
        let (consumed, _) = try XCTUnwrap(Noise.consumeInitiation(initiation, identity: pair.responder,
                                                                  lookup: pair.lookup))
        Noise.accept(consumed, into: &rhs, now: 7)
        let response = try XCTUnwrap(Noise.createResponse(peer: pair.initiatorAsPeer, handshake: &rhs,
                                                          localIndex: 0x0807_0605))
        XCTAssertEqual(response.count, 92)
        XCTAssertEqual(Array(response[0..<12]), [2, 0, 0, 0, 5, 6, 7, 8, 1, 2, 3, 4],
                       "type 2, sender = responder's index, receiver = initiator's index")
        XCTAssertEqual(Array(response[60..<92]), [UInt8](repeating: 0, count: 32))
    }

    // MARK: Round trip

    /// Each case: initiator's index, responder's index, whether both sides share a preshared key.
    static let roundTrips: [(UInt32, UInt32, Bool)] = [
        (1, 2, false),
        (0x1234_5678, 0x9abc_def0, true),
        (0, UInt32.max, false),
        (UInt32.max, 0, true),
        (42, 42, true),
    ]

    func testRoundTrip() throws {
        for (n, (iIndex, rIndex, withPSK)) in Self.roundTrips.enumerated() {
            let psk = withPSK ? SecretKey.random() : nil
            let pair = Pair(initiatorPSK: psk, responderPSK: psk)
            let (i, r) = try XCTUnwrap(handshake(pair, initiatorIndex: iIndex, responderIndex: rIndex), "case \(n)")

            XCTAssertTrue(i.isInitiator, "case \(n)")
            XCTAssertFalse(r.isInitiator, "case \(n)")
            XCTAssertTrue(i.sendKey.constantTimeEquals(r.receiveKey), "case \(n)")
            XCTAssertTrue(i.receiveKey.constantTimeEquals(r.sendKey), "case \(n)")
            XCTAssertFalse(i.sendKey.constantTimeEquals(i.receiveKey), "case \(n): the two directions differ")
            XCTAssertEqual(i.localIndex, iIndex, "case \(n)")
            XCTAssertEqual(i.remoteIndex, rIndex, "case \(n)")
            XCTAssertEqual(r.localIndex, rIndex, "case \(n)")
            XCTAssertEqual(r.remoteIndex, iIndex, "case \(n)")
            XCTAssertEqual(i.createdAt, 1_000, "case \(n)")
            XCTAssertEqual(r.createdAt, 2_000, "case \(n)")
            XCTAssertEqual(i.peerID, 11, "case \(n)")
            XCTAssertEqual(r.peerID, 22, "case \(n)")
            checkTransport(from: i, to: r, "case \(n) initiator → responder")
            checkTransport(from: r, to: i, "case \(n) responder → initiator")
        }
    }

    /// Two handshakes between the same keys give unrelated sessions (fresh ephemerals each time).
    func testEachHandshakeGivesNewKeys() throws {
        let pair = Pair()
        let (a, _) = try XCTUnwrap(handshake(pair))
        let (b, _) = try XCTUnwrap(handshake(pair))
        XCTAssertFalse(a.sendKey.constantTimeEquals(b.sendKey))
        XCTAssertFalse(a.receiveKey.constantTimeEquals(b.receiveKey))
    }

    func testConsumedInitiationCarriesIdentityIndexAndTimestamp() throws {
        let pair = Pair()
        var hs = Handshake()
        let msg = try XCTUnwrap(Noise.createInitiation(identity: pair.initiator, peer: pair.responderAsPeer,
                                                       handshake: &hs, localIndex: 77, timestamp: timestamp))
        let (consumed, peer) = try XCTUnwrap(Noise.consumeInitiation(msg, identity: pair.responder,
                                                                     lookup: pair.lookup))
        XCTAssertEqual(consumed.remoteStatic, pair.initiator.publicKey)
        XCTAssertEqual(peer.remoteStatic, pair.initiator.publicKey)
        XCTAssertEqual(consumed.senderIndex, 77)
        XCTAssertEqual(consumed.timestamp, timestamp)

        var rhs = Handshake()
        Noise.accept(consumed, into: &rhs, now: 1234)
        XCTAssertEqual(rhs.stage, .consumedInitiation)
        XCTAssertEqual(rhs.remoteIndex, 77)
        XCTAssertEqual(rhs.latestTimestamp, timestamp)
        XCTAssertEqual(rhs.lastInitiationConsumed, 1234)
    }

    /// beginSession clears the handshake but keeps what the replay and flood checks need.
    func testBeginSessionClearsHandshake() throws {
        let pair = Pair()
        var ihs = Handshake(), rhs = Handshake()
        let initiation = try XCTUnwrap(Noise.createInitiation(identity: pair.initiator, peer: pair.responderAsPeer,
                                                              handshake: &ihs, localIndex: 1, timestamp: timestamp))
        let (consumed, _) = try XCTUnwrap(Noise.consumeInitiation(initiation, identity: pair.responder,
                                                                  lookup: pair.lookup))
        Noise.accept(consumed, into: &rhs, now: 555)
        let response = try XCTUnwrap(Noise.createResponse(peer: pair.initiatorAsPeer, handshake: &rhs, localIndex: 2))
        XCTAssertNotNil(Noise.beginSession(handshake: &rhs, now: 600, peerID: 0))
        XCTAssertEqual(rhs.stage, .zeroed)
        XCTAssertTrue(rhs.hash.isEmpty)
        XCTAssertTrue(rhs.chainingKey.isEmpty)
        XCTAssertNil(rhs.ephemeralPrivate)
        XCTAssertEqual(rhs.latestTimestamp, timestamp)
        XCTAssertEqual(rhs.lastInitiationConsumed, 555)
        XCTAssertNil(Noise.beginSession(handshake: &rhs, now: 600, peerID: 0), "only once per handshake")

        XCTAssertTrue(Noise.consumeResponse(response, identity: pair.initiator, peer: pair.responderAsPeer,
                                            handshake: &ihs))
        XCTAssertNotNil(Noise.beginSession(handshake: &ihs, now: 600, peerID: 0))
        XCTAssertEqual(ihs.stage, .zeroed)
        XCTAssertNil(Noise.beginSession(handshake: &ihs, now: 600, peerID: 0))
    }

    // MARK: Keys that do not match

    /// Each case: initiator's PSK, responder's PSK (nil = unset, i.e. all zeros), whether the handshake completes.
    func testPresharedKeys() throws {
        let a = SecretKey.random(), b = SecretKey.random()
        let aCopy = SecretKey(bytes: a.bytes)!
        let cases: [(SecretKey?, SecretKey?, Bool)] = [
            (nil, nil, true),
            (a, aCopy, true),
            (SecretKey(), nil, true),   // an explicit zero key is the same as none
            (a, b, false),
            (a, nil, false),
            (nil, b, false),
        ]
        for (n, (ipsk, rpsk, completes)) in cases.enumerated() {
            let pair = Pair(initiatorPSK: ipsk, responderPSK: rpsk)
            var ihs = Handshake(), rhs = Handshake()
            let initiation = try XCTUnwrap(Noise.createInitiation(identity: pair.initiator,
                                                                  peer: pair.responderAsPeer, handshake: &ihs,
                                                                  localIndex: 1, timestamp: timestamp))
            // The PSK enters only with the response: the initiation is accepted either way.
            let (consumed, peer) = try XCTUnwrap(Noise.consumeInitiation(initiation, identity: pair.responder,
                                                                         lookup: pair.lookup), "case \(n)")
            Noise.accept(consumed, into: &rhs, now: 0)
            let response = try XCTUnwrap(Noise.createResponse(peer: peer, handshake: &rhs, localIndex: 2))
            let ok = Noise.consumeResponse(response, identity: pair.initiator, peer: pair.responderAsPeer,
                                           handshake: &ihs)
            XCTAssertEqual(ok, completes, "case \(n)")
            XCTAssertEqual(ihs.stage, completes ? .consumedResponse : .createdInitiation, "case \(n)")
        }
    }

    func testInitiationForAnotherResponderIsRejected() throws {
        let pair = Pair()
        let stranger = StaticIdentity(privateKey: X25519.generatePrivateKey())
        var hs = Handshake()
        let msg = try XCTUnwrap(Noise.createInitiation(identity: pair.initiator, peer: pair.responderAsPeer,
                                                       handshake: &hs, localIndex: 1, timestamp: timestamp))
        var looked = false
        XCTAssertNil(Noise.consumeInitiation(msg, identity: stranger, lookup: { _ in looked = true; return nil }))
        XCTAssertFalse(looked, "the static key must not decrypt, so no lookup happens")
        // Even a stranger that would accept any peer cannot decrypt it.
        let anyPeer = PeerKeys(identity: stranger, remoteStatic: pair.initiator.publicKey, presharedKey: nil)
        XCTAssertNil(Noise.consumeInitiation(msg, identity: stranger, lookup: { _ in anyPeer }))
        XCTAssertNotNil(Noise.consumeInitiation(msg, identity: pair.responder, lookup: pair.lookup))
    }

    func testUnknownPeerIsRejected() throws {
        let pair = Pair()
        var hs = Handshake()
        let msg = try XCTUnwrap(Noise.createInitiation(identity: pair.initiator, peer: pair.responderAsPeer,
                                                       handshake: &hs, localIndex: 1, timestamp: timestamp))
        var asked: [PublicKey] = []
        XCTAssertNil(Noise.consumeInitiation(msg, identity: pair.responder, lookup: { asked.append($0); return nil }))
        XCTAssertEqual(asked, [pair.initiator.publicKey], "the lookup gets the initiator's decrypted static key")
    }

    /// A peer whose configured public key is a low-order point has no static-static secret: an initiation that the
    /// lookup maps to it fails, and we never build an initiation to it.
    func testPeerWithLowOrderStaticKey() throws {
        let pair = Pair()
        var hs = Handshake()
        let msg = try XCTUnwrap(Noise.createInitiation(identity: pair.initiator, peer: pair.responderAsPeer,
                                                       handshake: &hs, localIndex: 1, timestamp: timestamp))
        for point in lowOrderPoints {
            let bad = PeerKeys(identity: pair.responder, remoteStatic: PublicKey(hex: point)!, presharedKey: nil)
            XCTAssertNil(bad.staticStatic, point)
            XCTAssertNil(Noise.consumeInitiation(msg, identity: pair.responder, lookup: { _ in bad }), point)
            var ihs = Handshake()
            let asInitiator = PeerKeys(identity: pair.initiator, remoteStatic: PublicKey(hex: point)!,
                                       presharedKey: nil)
            XCTAssertNil(Noise.createInitiation(identity: pair.initiator, peer: asInitiator, handshake: &ihs,
                                                localIndex: 1, timestamp: timestamp), point)
            XCTAssertEqual(ihs.stage, .zeroed, point)
        }
    }

    // MARK: Damaged messages

    /// Flipping any bit of the ephemeral key, the encrypted static key or the encrypted timestamp breaks the
    /// initiation. (One bit per byte, a different bit each time; the top bit of the ephemeral's last byte is
    /// ignored by X25519 but still hashed, so it must fail too.)
    func testTamperedInitiation() throws {
        let pair = Pair()
        var hs = Handshake()
        let msg = try XCTUnwrap(Noise.createInitiation(identity: pair.initiator, peer: pair.responderAsPeer,
                                                       handshake: &hs, localIndex: 1, timestamp: timestamp))
        let regions: [(String, Range<Int>)] = [("ephemeral", 8..<40), ("encrypted static", 40..<88),
                                               ("encrypted timestamp", 88..<116)]
        for (name, range) in regions {
            for offset in range {
                for bit in [offset % 8, 7] {
                    var bad = msg
                    bad[offset] ^= 1 << bit
                    XCTAssertNil(Noise.consumeInitiation(bad, identity: pair.responder, lookup: pair.lookup),
                                 "\(name) byte \(offset) bit \(bit)")
                }
            }
        }
        XCTAssertNotNil(Noise.consumeInitiation(msg, identity: pair.responder, lookup: pair.lookup))
    }

    func testTamperedResponse() throws {
        let pair = Pair(initiatorPSK: nil, responderPSK: nil)
        var ihs = Handshake(), rhs = Handshake()
        let initiation = try XCTUnwrap(Noise.createInitiation(identity: pair.initiator, peer: pair.responderAsPeer,
                                                              handshake: &ihs, localIndex: 1, timestamp: timestamp))
        let (consumed, _) = try XCTUnwrap(Noise.consumeInitiation(initiation, identity: pair.responder,
                                                                  lookup: pair.lookup))
        Noise.accept(consumed, into: &rhs, now: 0)
        let response = try XCTUnwrap(Noise.createResponse(peer: pair.initiatorAsPeer, handshake: &rhs, localIndex: 2))
        let regions: [(String, Range<Int>)] = [("ephemeral", 12..<44), ("encrypted empty", 44..<60)]
        for (name, range) in regions {
            for offset in range {
                for bit in [offset % 8, 7] {
                    var bad = response
                    bad[offset] ^= 1 << bit
                    XCTAssertFalse(Noise.consumeResponse(bad, identity: pair.initiator, peer: pair.responderAsPeer,
                                                         handshake: &ihs), "\(name) byte \(offset) bit \(bit)")
                    XCTAssertEqual(ihs.stage, .createdInitiation, "a failed response leaves the handshake as it was")
                }
            }
        }
        // The state was untouched, so the genuine response still completes the handshake.
        XCTAssertTrue(Noise.consumeResponse(response, identity: pair.initiator, peer: pair.responderAsPeer,
                                            handshake: &ihs))
    }

    func testWrongSizesAreRejected() throws {
        let pair = Pair()
        var ihs = Handshake(), rhs = Handshake()
        let initiation = try XCTUnwrap(Noise.createInitiation(identity: pair.initiator, peer: pair.responderAsPeer,
                                                              handshake: &ihs, localIndex: 1, timestamp: timestamp))
        for bad in [Array(initiation.dropLast()), initiation + [0], []] {
            XCTAssertNil(Noise.consumeInitiation(bad, identity: pair.responder, lookup: pair.lookup), "\(bad.count)")
        }
        let (consumed, _) = try XCTUnwrap(Noise.consumeInitiation(initiation, identity: pair.responder,
                                                                  lookup: pair.lookup))
        Noise.accept(consumed, into: &rhs, now: 0)
        let response = try XCTUnwrap(Noise.createResponse(peer: pair.initiatorAsPeer, handshake: &rhs, localIndex: 2))
        for bad in [Array(response.dropLast()), response + [0], [], initiation] {
            XCTAssertFalse(Noise.consumeResponse(bad, identity: pair.initiator, peer: pair.responderAsPeer,
                                                 handshake: &ihs), "\(bad.count)")
        }
        XCTAssertTrue(Noise.consumeResponse(response, identity: pair.initiator, peer: pair.responderAsPeer,
                                            handshake: &ihs))
    }

    func testLowOrderEphemeral() throws {
        let pair = Pair()
        var ihs = Handshake(), rhs = Handshake()
        let initiation = try XCTUnwrap(Noise.createInitiation(identity: pair.initiator, peer: pair.responderAsPeer,
                                                              handshake: &ihs, localIndex: 1, timestamp: timestamp))
        let (consumed, _) = try XCTUnwrap(Noise.consumeInitiation(initiation, identity: pair.responder,
                                                                  lookup: pair.lookup))
        Noise.accept(consumed, into: &rhs, now: 0)
        let response = try XCTUnwrap(Noise.createResponse(peer: pair.initiatorAsPeer, handshake: &rhs, localIndex: 2))
        for point in lowOrderPoints {
            let bytes = PublicKey(hex: point)!.bytes
            var badInitiation = initiation
            badInitiation.replaceSubrange(8..<40, with: bytes)
            XCTAssertNil(Noise.consumeInitiation(badInitiation, identity: pair.responder, lookup: pair.lookup), point)
            var badResponse = response
            badResponse.replaceSubrange(12..<44, with: bytes)
            XCTAssertFalse(Noise.consumeResponse(badResponse, identity: pair.initiator, peer: pair.responderAsPeer,
                                                 handshake: &ihs), point)
        }
        XCTAssertTrue(Noise.consumeResponse(response, identity: pair.initiator, peer: pair.responderAsPeer,
                                            handshake: &ihs))
    }

    // MARK: Stages

    func testConsumeResponseInWrongStage() throws {
        let pair = Pair()
        var ihs = Handshake(), rhs = Handshake()
        let initiation = try XCTUnwrap(Noise.createInitiation(identity: pair.initiator, peer: pair.responderAsPeer,
                                                              handshake: &ihs, localIndex: 1, timestamp: timestamp))
        let (consumed, _) = try XCTUnwrap(Noise.consumeInitiation(initiation, identity: pair.responder,
                                                                  lookup: pair.lookup))
        Noise.accept(consumed, into: &rhs, now: 0)
        let response = try XCTUnwrap(Noise.createResponse(peer: pair.initiatorAsPeer, handshake: &rhs, localIndex: 2))

        var fresh = Handshake()
        XCTAssertFalse(Noise.consumeResponse(response, identity: pair.initiator, peer: pair.responderAsPeer,
                                             handshake: &fresh), "no initiation was sent")
        XCTAssertEqual(fresh.stage, .zeroed)
        var responderSide = rhs
        XCTAssertFalse(Noise.consumeResponse(response, identity: pair.initiator, peer: pair.responderAsPeer,
                                             handshake: &responderSide), "the responder's own handshake")
        XCTAssertEqual(responderSide.stage, .createdResponse)

        XCTAssertTrue(Noise.consumeResponse(response, identity: pair.initiator, peer: pair.responderAsPeer,
                                            handshake: &ihs))
        XCTAssertFalse(Noise.consumeResponse(response, identity: pair.initiator, peer: pair.responderAsPeer,
                                             handshake: &ihs), "a second copy of the response")
        XCTAssertEqual(ihs.stage, .consumedResponse)
        _ = Noise.beginSession(handshake: &ihs, now: 0, peerID: 0)
        XCTAssertFalse(Noise.consumeResponse(response, identity: pair.initiator, peer: pair.responderAsPeer,
                                             handshake: &ihs), "after the session began")

        // A newer initiation replaces the old one: the response to the old one no longer fits.
        _ = try XCTUnwrap(Noise.createInitiation(identity: pair.initiator, peer: pair.responderAsPeer,
                                                 handshake: &ihs, localIndex: 3, timestamp: timestamp))
        XCTAssertFalse(Noise.consumeResponse(response, identity: pair.initiator, peer: pair.responderAsPeer,
                                             handshake: &ihs), "response to a superseded initiation")
    }

    func testCreateResponseNeedsConsumedInitiation() {
        let pair = Pair()
        var hs = Handshake()
        XCTAssertNil(Noise.createResponse(peer: pair.initiatorAsPeer, handshake: &hs, localIndex: 1))
        XCTAssertNil(Noise.beginSession(handshake: &hs, now: 0, peerID: 0))
        _ = Noise.createInitiation(identity: pair.initiator, peer: pair.responderAsPeer, handshake: &hs,
                                   localIndex: 1, timestamp: timestamp)
        XCTAssertNil(Noise.createResponse(peer: pair.initiatorAsPeer, handshake: &hs, localIndex: 1))
        XCTAssertNil(Noise.beginSession(handshake: &hs, now: 0, peerID: 0), "an initiation alone is no session")
    }

    // MARK: Helpers

    /// The whole exchange; nil if any step fails.
    private func handshake(_ pair: Pair, initiatorIndex: UInt32 = 1,
                           responderIndex: UInt32 = 2) -> (initiator: Keypair, responder: Keypair)? {
        var ihs = Handshake(), rhs = Handshake()
        guard let initiation = Noise.createInitiation(identity: pair.initiator, peer: pair.responderAsPeer,
                                                      handshake: &ihs, localIndex: initiatorIndex,
                                                      timestamp: timestamp),
              let (consumed, peer) = Noise.consumeInitiation(initiation, identity: pair.responder,
                                                             lookup: pair.lookup) else { return nil }
        Noise.accept(consumed, into: &rhs, now: 1_000)
        guard let response = Noise.createResponse(peer: peer, handshake: &rhs, localIndex: responderIndex),
              response.le32(at: 8) == initiation.le32(at: 4),
              Noise.consumeResponse(response, identity: pair.initiator, peer: pair.responderAsPeer,
                                    handshake: &ihs),
              let i = Noise.beginSession(handshake: &ihs, now: 1_000, peerID: 11),
              let r = Noise.beginSession(handshake: &rhs, now: 2_000, peerID: 22) else { return nil }
        return (i, r)
    }

    /// A transport payload sealed with one side's send key opens with the other side's receive key, and only there.
    private func checkTransport(from a: Keypair, to b: Keypair, _ what: String) {
        let payload = Array("a packet through the tunnel".utf8)
        for counter: UInt64 in [0, 1, 1 << 40] {
            let sealed = ChaChaPoly.seal(key: a.sendKey, counter: counter, plaintext: payload, ad: [])
            XCTAssertEqual(ChaChaPoly.open(key: b.receiveKey, counter: counter, ciphertext: sealed, ad: []), payload,
                           what)
            XCTAssertNil(ChaChaPoly.open(key: b.sendKey, counter: counter, ciphertext: sealed, ad: []), what)
            XCTAssertNil(ChaChaPoly.open(key: a.receiveKey, counter: counter, ciphertext: sealed, ad: []), what)
            XCTAssertNil(ChaChaPoly.open(key: b.receiveKey, counter: counter + 1, ciphertext: sealed, ad: []), what)
        }
    }
}

/// Lowercase hex, for comparing against constants computed elsewhere.
func hex(_ bytes: some Collection<UInt8>) -> String {
    let digits = Array("0123456789abcdef")
    return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
}
