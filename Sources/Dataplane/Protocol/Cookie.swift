// mac1/mac2 and cookie replies: the DoS defence in front of the handshake. Control thread only.
import Crypto

/// Our side as a responder: validates macs on incoming handshake messages and makes cookie replies.
public struct CookieChecker: Sendable {
    private let identity: StaticIdentity
    private var secret: [UInt8] = []
    private var secretBirth: UInt64 = 0
    private var hasSecret = false

    public init(identity: StaticIdentity) { self.identity = identity }

    /// mac1 must be MAC(HASH("mac1----" ‖ our key), message up to mac1).
    public func checkMac1(_ msg: [UInt8]) -> Bool {
        let off = MessageLayout.mac1Offset(messageSize: msg.count)
        guard off > 0 else { return false }
        let expect = msg.withUnsafeBytes { p in
            Blake2s.mac(key: identity.mac1Key, data: UnsafeRawBufferPointer(rebasing: p[0..<off]), outputLength: 16)
        }
        return constantTimeEqual(expect, msg[off..<off + 16])
    }

    private mutating func currentCookie(for source: Endpoint, now: UInt64) -> [UInt8] {
        if !hasSecret || now &- secretBirth >= ProtocolLimits.cookieRefreshTime {
            secret = SecureRandom.bytes(32)
            secretBirth = now
            hasSecret = true
        }
        return Blake2s.mac(key: secret, data: source.cookieMaterial, outputLength: 16)
    }

    /// mac2 must be MAC(cookie for this source, message up to mac2).
    public mutating func checkMac2(_ msg: [UInt8], source: Endpoint, now: UInt64) -> Bool {
        let off = MessageLayout.mac2Offset(messageSize: msg.count)
        guard off > 0 else { return false }
        let cookie = currentCookie(for: source, now: now)
        let expect = msg.withUnsafeBytes { p in
            Blake2s.mac(key: cookie, data: UnsafeRawBufferPointer(rebasing: p[0..<off]), outputLength: 16)
        }
        return constantTimeEqual(expect, msg[off..<off + 16])
    }

    /// A cookie reply to `msg` (an initiation or response whose mac1 was valid).
    public mutating func createReply(to msg: [UInt8], source: Endpoint, now: UInt64) -> [UInt8] {
        let senderIndex = msg.le32(at: 4)
        let mac1Off = MessageLayout.mac1Offset(messageSize: msg.count)
        let mac1 = Array(msg[mac1Off..<mac1Off + 16])
        let cookie = currentCookie(for: source, now: now)
        let nonce = SecureRandom.bytes(MessageLayout.cookieNonceSize)
        let sealed = XChaChaPoly.seal(key: identity.cookieKey, nonce: nonce, plaintext: cookie, ad: mac1)
        var reply = [UInt8](repeating: 0, count: MessageLayout.cookieReplySize)
        reply[0] = UInt8(MessageType.cookieReply.rawValue)
        reply.putLE32(senderIndex, at: 4)
        reply.replaceSubrange(8..<32, with: nonce)
        reply.replaceSubrange(32..<64, with: sealed)
        return reply
    }
}

/// Our side as a sender of handshake messages to one peer: adds macs and remembers cookies it was given.
public struct CookieGenerator: Sendable {
    private var cookie: [UInt8] = []
    private var cookieTime: UInt64 = 0
    private var lastMac1: [UInt8] = []

    public init() {}

    /// Fills mac1 (always) and mac2 (when a fresh cookie is held) of an outgoing handshake message.
    public mutating func addMacs(_ msg: inout [UInt8], peer: PeerKeys, now: UInt64) {
        let mac1Off = MessageLayout.mac1Offset(messageSize: msg.count)
        let mac1 = msg.withUnsafeBytes { p in
            Blake2s.mac(key: peer.mac1Key, data: UnsafeRawBufferPointer(rebasing: p[0..<mac1Off]), outputLength: 16)
        }
        msg.replaceSubrange(mac1Off..<mac1Off + 16, with: mac1)
        lastMac1 = mac1
        let mac2Off = MessageLayout.mac2Offset(messageSize: msg.count)
        if !cookie.isEmpty && now &- cookieTime < ProtocolLimits.cookieValidity {
            let mac2 = msg.withUnsafeBytes { p in
                Blake2s.mac(key: cookie, data: UnsafeRawBufferPointer(rebasing: p[0..<mac2Off]), outputLength: 16)
            }
            msg.replaceSubrange(mac2Off..<mac2Off + 16, with: mac2)
        } else {
            for i in mac2Off..<mac2Off + 16 { msg[i] = 0 }
        }
    }

    /// Opens a cookie reply meant for our last message. Returns false if it does not authenticate.
    public mutating func consumeReply(_ reply: [UInt8], peer: PeerKeys, now: UInt64) -> Bool {
        guard reply.count == MessageLayout.cookieReplySize, !lastMac1.isEmpty else { return false }
        let nonce = Array(reply[8..<32])
        guard let opened = XChaChaPoly.open(key: peer.cookieKey, nonce: nonce, ciphertext: Array(reply[32..<64]),
                                            ad: lastMac1), opened.count == 16 else { return false }
        cookie = opened
        cookieTime = now
        lastMac1 = []
        return true
    }

    public mutating func clear() { wipe(&cookie); lastMac1 = [] }
}

@inline(__always) func constantTimeEqual(_ a: [UInt8], _ b: ArraySlice<UInt8>) -> Bool {
    guard a.count == b.count else { return false }
    var diff: UInt8 = 0
    var j = b.startIndex
    for x in a { diff |= x ^ b[j]; j += 1 }
    return diff == 0
}
