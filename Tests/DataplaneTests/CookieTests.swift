// mac1, mac2 and cookie replies between one sender (CookieGenerator) and one responder (CookieChecker), with
// times given explicitly.
import Crypto
import XCTest
@testable import Dataplane

private let second = ProtocolLimits.second
private let t0: UInt64 = 1_000 * second

/// The responder's checker and the sender's view of the responder.
private struct Setup {
    let responder = StaticIdentity(privateKey: X25519.generatePrivateKey())
    let sender = StaticIdentity(privateKey: X25519.generatePrivateKey())
    let checker: CookieChecker
    let responderAsPeer: PeerKeys

    init() {
        checker = CookieChecker(identity: responder)
        responderAsPeer = PeerKeys(identity: sender, remoteStatic: responder.publicKey, presharedKey: nil)
    }
}

/// A handshake message of `size` bytes (148 initiation, 92 response) with random content and zero macs.
private func message(size: Int, sender: UInt32 = 0x0a0b_0c0d) -> [UInt8] {
    var msg = SecureRandom.bytes(size)
    msg[0] = size == MessageLayout.initiationSize ? 1 : 2
    msg[1] = 0; msg[2] = 0; msg[3] = 0
    msg.putLE32(sender, at: 4)
    for i in size - 32..<size { msg[i] = 0 }
    return msg
}

private let source = Endpoint(address: IPAddress("192.0.2.10")!, port: 51820)
private let zeroMac = [UInt8](repeating: 0, count: 16)

final class CookieTests: XCTestCase {
    static let sizes = [MessageLayout.initiationSize, MessageLayout.responseSize]

    // MARK: mac1

    /// Keys and mac1 for a fixed public key 01 02 … 20 and a fixed message, computed independently with Python's
    /// hashlib.blake2s: key = BLAKE2s("mac1----" ‖ pub), mac1 = BLAKE2s(key = key, digest 16, message[0..<mac1]).
    func testMac1KnownAnswer() {
        let identity = StaticIdentity(privateKey: X25519.generatePrivateKey())
        let peer = PeerKeys(identity: identity, remoteStatic: PublicKey(bytes: 1...32)!, presharedKey: nil)
        XCTAssertEqual(hex(peer.mac1Key), "121b33018813efaa1d3128cdec1392897828e98831f01822c250ddfdf7090183")
        XCTAssertEqual(hex(peer.cookieKey), "2f87e1b72843ca5c7d1f3d56271f4a9e22cd2c8f01c86b1b88bd8fb7d7871de1")
        // Message byte i is (7i + 3) mod 256.
        let cases: [(Int, String)] = [(148, "2902e97104d59ef400e37122c90e13f0"), (92, "01202b0a3ac9d61b34722d3f6dffa887")]
        for (size, expected) in cases {
            var msg = (0..<size).map { UInt8(truncatingIfNeeded: $0 * 7 + 3) }
            var generator = CookieGenerator()
            generator.addMacs(&msg, peer: peer, now: t0)
            XCTAssertEqual(hex(msg[(size - 32)..<(size - 16)]), expected, "size \(size)")
            XCTAssertEqual(Array(msg[(size - 16)...]), zeroMac, "size \(size): no cookie, so mac2 is zero")
            XCTAssertEqual(msg[0..<(size - 32)], (0..<size - 32).map { UInt8(truncatingIfNeeded: $0 * 7 + 3) }[...],
                           "the bytes before the macs are not touched")
        }
        // Our own identity's mac1 key is the same construction over our public key.
        XCTAssertEqual(identity.mac1Key, Blake2s.hash(Array("mac1----".utf8), identity.publicKey.bytes))
        XCTAssertEqual(identity.cookieKey, Blake2s.hash(Array("cookie--".utf8), identity.publicKey.bytes))
    }

    func testMac1RoundTripAndTampering() {
        let s = Setup()
        for size in Self.sizes {
            var msg = message(size: size)
            var generator = CookieGenerator()
            generator.addMacs(&msg, peer: s.responderAsPeer, now: t0)
            XCTAssertTrue(s.checker.checkMac1(msg), "size \(size)")
            XCTAssertEqual(Array(msg[(size - 16)...]), zeroMac, "size \(size): mac2 without a cookie")
            // mac1 covers every byte before mac2, including itself.
            for offset in 0..<(size - 16) {
                var bad = msg
                bad[offset] ^= 1 << (offset % 8)
                XCTAssertFalse(s.checker.checkMac1(bad), "size \(size) byte \(offset)")
            }
            // ... but not mac2.
            var mac2Changed = msg
            mac2Changed[size - 1] ^= 0xff
            XCTAssertTrue(s.checker.checkMac1(mac2Changed), "size \(size)")
            // Another responder computes a different mac1.
            let other = CookieChecker(identity: StaticIdentity(privateKey: X25519.generatePrivateKey()))
            XCTAssertFalse(other.checkMac1(msg), "size \(size)")
        }
    }

    func testMac1OfTooShortMessages() {
        let s = Setup()
        for size in [0, 1, 16, 31, 32] {
            XCTAssertFalse(s.checker.checkMac1([UInt8](repeating: 0, count: size)), "size \(size)")
        }
    }

    // MARK: Cookies and mac2

    /// Each case: where the second message comes from, and whether its mac2 (made with the cookie for `source`)
    /// is accepted.
    static let sources: [(String, Endpoint, Bool)] = [
        ("same address and port", Endpoint(address: IPAddress("192.0.2.10")!, port: 51820), true),
        ("other address", Endpoint(address: IPAddress("192.0.2.11")!, port: 51820), false),
        ("other port", Endpoint(address: IPAddress("192.0.2.10")!, port: 51821), false),
        ("port bytes swapped", Endpoint(address: IPAddress("192.0.2.10")!, port: 0x6cca), false),
        ("v6", Endpoint(address: IPAddress("2001:db8::c000:20a")!, port: 51820), false),
    ]

    func testCookieReplyGivesMac2BoundToSource() throws {
        for size in Self.sizes {
            for (name, from, accepted) in Self.sources {
                let s = Setup()
                var checker = s.checker
                var generator = CookieGenerator()
                var first = message(size: size, sender: 0x1122_3344)
                generator.addMacs(&first, peer: s.responderAsPeer, now: t0)
                XCTAssertTrue(checker.checkMac1(first))
                XCTAssertFalse(checker.checkMac2(first, source: source, now: t0), "no cookie yet")

                let reply = checker.createReply(to: first, source: source, now: t0)
                XCTAssertEqual(reply.count, MessageLayout.cookieReplySize)
                XCTAssertEqual(Array(reply[0..<8]), [3, 0, 0, 0, 0x44, 0x33, 0x22, 0x11],
                               "type 3, receiver = the sender index of the message it answers")
                XCTAssertTrue(generator.consumeReply(reply, peer: s.responderAsPeer, now: t0 + second))

                var next = message(size: size)
                generator.addMacs(&next, peer: s.responderAsPeer, now: t0 + 2 * second)
                XCTAssertNotEqual(Array(next[(size - 16)...]), zeroMac, "size \(size) \(name)")
                XCTAssertTrue(checker.checkMac1(next), "size \(size) \(name)")
                XCTAssertEqual(checker.checkMac2(next, source: from, now: t0 + 3 * second), accepted,
                               "size \(size) \(name)")
                // mac2 covers mac1 and everything before it.
                for offset in [0, 4, size - 33, size - 32, size - 17] {
                    var bad = next
                    bad[offset] ^= 0x10
                    XCTAssertFalse(checker.checkMac2(bad, source: source, now: t0 + 3 * second),
                                   "size \(size) \(name) byte \(offset)")
                }
            }
        }
    }

    func testReplyMustMatchTheLastMessage() {
        let s = Setup()
        var checker = s.checker
        var generator = CookieGenerator()
        XCTAssertFalse(generator.consumeReply(checker.createReply(to: message(size: 148), source: source, now: t0),
                                              peer: s.responderAsPeer, now: t0), "nothing was sent yet")

        var a = message(size: 148), b = message(size: 148)
        generator.addMacs(&a, peer: s.responderAsPeer, now: t0)
        generator.addMacs(&b, peer: s.responderAsPeer, now: t0)
        let replyToA = checker.createReply(to: a, source: source, now: t0)
        XCTAssertFalse(generator.consumeReply(replyToA, peer: s.responderAsPeer, now: t0),
                       "the reply's additional data is mac1 of an older message")
        let replyToB = checker.createReply(to: b, source: source, now: t0)
        var tampered = replyToB
        tampered[40] ^= 1
        XCTAssertFalse(generator.consumeReply(tampered, peer: s.responderAsPeer, now: t0), "damaged cookie")
        var badNonce = replyToB
        badNonce[8] ^= 1
        XCTAssertFalse(generator.consumeReply(badNonce, peer: s.responderAsPeer, now: t0), "damaged nonce")
        XCTAssertFalse(generator.consumeReply(Array(replyToB.dropLast()), peer: s.responderAsPeer, now: t0))
        // Sealed by a responder other than the one the message was for.
        var stranger = CookieChecker(identity: StaticIdentity(privateKey: X25519.generatePrivateKey()))
        XCTAssertFalse(generator.consumeReply(stranger.createReply(to: b, source: source, now: t0),
                                              peer: s.responderAsPeer, now: t0))
        XCTAssertTrue(generator.consumeReply(replyToB, peer: s.responderAsPeer, now: t0))
        XCTAssertFalse(generator.consumeReply(replyToB, peer: s.responderAsPeer, now: t0),
                       "one reply per message: a second copy is refused")
    }

    /// Each case: the cookie's age when the next message is sent, and whether mac2 is filled in.
    static let ages: [(UInt64, Bool)] = [
        (0, true),
        (1, true),
        (ProtocolLimits.cookieValidity - 1, true),
        (ProtocolLimits.cookieValidity, false),
        (ProtocolLimits.cookieValidity + 1, false),
        (ProtocolLimits.cookieRefreshTime, false),
        (1_000_000 * second, false),
    ]

    func testCookieValidity() {
        XCTAssertEqual(ProtocolLimits.cookieValidity, 115 * second)
        for (age, used) in Self.ages {
            let s = Setup()
            var checker = s.checker
            var generator = CookieGenerator()
            var first = message(size: 148)
            generator.addMacs(&first, peer: s.responderAsPeer, now: t0)
            XCTAssertTrue(generator.consumeReply(checker.createReply(to: first, source: source, now: t0),
                                                 peer: s.responderAsPeer, now: t0))
            var next = message(size: 148)
            generator.addMacs(&next, peer: s.responderAsPeer, now: t0 + age)
            XCTAssertEqual(Array(next[132...]) != zeroMac, used, "age \(age)")
            XCTAssertTrue(s.checker.checkMac1(next), "age \(age)")
        }
    }

    func testClearForgetsCookie() {
        let s = Setup()
        var checker = s.checker
        var generator = CookieGenerator()
        var first = message(size: 148)
        generator.addMacs(&first, peer: s.responderAsPeer, now: t0)
        let reply = checker.createReply(to: first, source: source, now: t0)
        generator.clear()
        XCTAssertFalse(generator.consumeReply(reply, peer: s.responderAsPeer, now: t0), "the sent mac1 is forgotten")
        generator.addMacs(&first, peer: s.responderAsPeer, now: t0)
        XCTAssertTrue(generator.consumeReply(reply, peer: s.responderAsPeer, now: t0))
        generator.clear()
        var next = message(size: 148)
        generator.addMacs(&next, peer: s.responderAsPeer, now: t0)
        XCTAssertEqual(Array(next[132...]), zeroMac, "the cookie is forgotten")
    }

    /// The checker's random secret lives cookieRefreshTime: a mac2 made with a cookie from the old secret is
    /// accepted until then and refused after.
    func testSecretRotates() {
        let cases: [(UInt64, Bool)] = [
            (ProtocolLimits.cookieRefreshTime - 1, true),
            (ProtocolLimits.cookieRefreshTime, false),
            (ProtocolLimits.cookieRefreshTime + 1, false),
            (10 * ProtocolLimits.cookieRefreshTime, false),
        ]
        for (later, accepted) in cases {
            let s = Setup()
            var checker = s.checker
            var generator = CookieGenerator()
            var first = message(size: 148)
            generator.addMacs(&first, peer: s.responderAsPeer, now: t0)
            XCTAssertTrue(generator.consumeReply(checker.createReply(to: first, source: source, now: t0),
                                                 peer: s.responderAsPeer, now: t0))
            var next = message(size: 148)
            generator.addMacs(&next, peer: s.responderAsPeer, now: t0)
            XCTAssertEqual(checker.checkMac2(next, source: source, now: t0 + later), accepted, "after \(later)")
        }

        // After a rotation, a fresh reply gives a working cookie again.
        let s = Setup()
        var checker = s.checker
        var generator = CookieGenerator()
        let t1 = t0 + ProtocolLimits.cookieRefreshTime
        var first = message(size: 148)
        generator.addMacs(&first, peer: s.responderAsPeer, now: t0)
        XCTAssertTrue(generator.consumeReply(checker.createReply(to: first, source: source, now: t0),
                                             peer: s.responderAsPeer, now: t0))
        var stale = message(size: 148)
        generator.addMacs(&stale, peer: s.responderAsPeer, now: t1)   // the sender already dropped it (120 s > 115 s)
        XCTAssertEqual(Array(stale[132...]), zeroMac)
        XCTAssertTrue(generator.consumeReply(checker.createReply(to: stale, source: source, now: t1),
                                             peer: s.responderAsPeer, now: t1))
        var fresh = message(size: 148)
        generator.addMacs(&fresh, peer: s.responderAsPeer, now: t1 + second)
        XCTAssertTrue(checker.checkMac2(fresh, source: source, now: t1 + second))
    }
}
