// Noise_IKpsk2 handshake: building and consuming initiation and response messages, deriving transport keys.
// Runs only on the control thread. Message macs are filled in by Cookie.swift after these functions.
import Crypto

/// This device's static key and the values derived from it.
public struct StaticIdentity: Sendable {
    public let privateKey: SecretKey
    public let publicKey: PublicKey
    /// HASH("mac1----" ‖ our public key): the key peers use for mac1 of messages to us.
    public let mac1Key: [UInt8]
    /// HASH("cookie--" ‖ our public key): the key our cookie replies are sealed with.
    public let cookieKey: [UInt8]

    public init(privateKey: SecretKey) {
        self.privateKey = privateKey
        publicKey = X25519.publicKey(for: privateKey)
        mac1Key = Blake2s.hash(NoiseConstants.labelMac1, publicKey.bytes)
        cookieKey = Blake2s.hash(NoiseConstants.labelCookie, publicKey.bytes)
    }
}

/// What the handshake needs to know about a peer.
public struct PeerKeys: Sendable {
    public let remoteStatic: PublicKey
    public let presharedKey: SecretKey
    /// DH(our static, their static), computed once; nil if their key is a low-order point.
    public let staticStatic: SecretKey?
    /// HASH("mac1----" ‖ their public key) and HASH("cookie--" ‖ their public key).
    public let mac1Key: [UInt8]
    public let cookieKey: [UInt8]

    public init(identity: StaticIdentity, remoteStatic: PublicKey, presharedKey: SecretKey?) {
        self.remoteStatic = remoteStatic
        self.presharedKey = presharedKey ?? SecretKey()
        staticStatic = X25519.sharedSecret(identity.privateKey, remoteStatic)
        mac1Key = Blake2s.hash(NoiseConstants.labelMac1, remoteStatic.bytes)
        cookieKey = Blake2s.hash(NoiseConstants.labelCookie, remoteStatic.bytes)
    }
}

public enum HandshakeStage: Sendable {
    case zeroed, createdInitiation, consumedInitiation, createdResponse, consumedResponse
}

/// One peer's handshake in progress. Owned by the control thread.
public struct Handshake: Sendable {
    public var stage: HandshakeStage = .zeroed
    var hash: [UInt8] = []
    var chainingKey: [UInt8] = []
    var ephemeralPrivate: SecretKey?
    var remoteEphemeral = PublicKey()
    public var localIndex: UInt32 = 0
    public var remoteIndex: UInt32 = 0
    /// The newest TAI64N accepted from this peer; older or equal initiations are replays.
    public var latestTimestamp: TAI64N?
    /// When we last consumed an initiation from this peer (monotonic), for the 50/s flood limit.
    public var lastInitiationConsumed: UInt64?

    public init() {}

    public mutating func clear() {
        stage = .zeroed
        wipe(&hash)
        wipe(&chainingKey)
        ephemeralPrivate = nil
        remoteEphemeral = PublicKey()
        localIndex = 0
        remoteIndex = 0
    }
}

@inline(__always) func wipe(_ a: inout [UInt8]) {
    a.withUnsafeMutableBytes { Memory.zero($0) }
    a = []
}

public enum Noise {
    static let initialChainingKey: [UInt8] = Blake2s.hash(NoiseConstants.construction)
    static let initialHash: [UInt8] = Blake2s.hash(initialChainingKey, NoiseConstants.identifier)

    static func mixHash(_ h: inout [UInt8], _ data: [UInt8]) { h = Blake2s.hash(h, data) }

    static func mixKey(_ ck: inout [UInt8], _ input: [UInt8]) {
        ck = Blake2s.kdf(key: ck, input: input, count: 1)[0]
    }

    static func mixKeyAndGetKey(_ ck: inout [UInt8], _ input: [UInt8]) -> SecretKey {
        var out = Blake2s.kdf(key: ck, input: input, count: 2)
        ck = out[0]
        let key = SecretKey(bytes: out[1])!
        wipe(&out[1])
        return key
    }

    // MARK: Initiator

    /// Builds an initiation (macs zero). Returns nil if the peer's static key is unusable.
    public static func createInitiation(identity: StaticIdentity, peer: PeerKeys, handshake hs: inout Handshake,
                                        localIndex: UInt32, timestamp: TAI64N) -> [UInt8]? {
        guard let ss = peer.staticStatic else { return nil }
        var ck = initialChainingKey
        var h = initialHash
        mixHash(&h, peer.remoteStatic.bytes)

        let ephemeral = X25519.generatePrivateKey()
        let ephemeralPublic = X25519.publicKey(for: ephemeral)
        mixKey(&ck, ephemeralPublic.bytes)
        mixHash(&h, ephemeralPublic.bytes)

        guard let es = X25519.sharedSecret(ephemeral, peer.remoteStatic) else { return nil }
        let k1 = mixKeyAndGetKey(&ck, es.bytes)
        let encStatic = ChaChaPoly.seal(key: k1, counter: 0, plaintext: identity.publicKey.bytes, ad: h)
        mixHash(&h, encStatic)

        let k2 = mixKeyAndGetKey(&ck, ss.bytes)
        let encTimestamp = ChaChaPoly.seal(key: k2, counter: 0, plaintext: timestamp.bytes, ad: h)
        mixHash(&h, encTimestamp)

        var msg = [UInt8](repeating: 0, count: MessageLayout.initiationSize)
        msg[0] = UInt8(MessageType.initiation.rawValue)
        msg.putLE32(localIndex, at: 4)
        msg.replaceSubrange(8..<40, with: ephemeralPublic.bytes)
        msg.replaceSubrange(40..<88, with: encStatic)
        msg.replaceSubrange(88..<116, with: encTimestamp)

        hs.clear()
        hs.stage = .createdInitiation
        hs.hash = h
        hs.chainingKey = ck
        hs.ephemeralPrivate = ephemeral
        hs.localIndex = localIndex
        return msg
    }

    /// The result of decrypting an initiation before the peer's state is touched.
    public struct ConsumedInitiation: Sendable {
        public let remoteStatic: PublicKey
        public let senderIndex: UInt32
        public let timestamp: TAI64N
        let remoteEphemeral: PublicKey
        let hash: [UInt8]
        let chainingKey: [UInt8]
    }

    /// Decrypts an initiation addressed to us. `lookup` finds the peer by the static key it carries.
    /// The caller checks the timestamp and flood limit, then calls `accept`.
    public static func consumeInitiation(_ msg: [UInt8], identity: StaticIdentity,
                                         lookup: (PublicKey) -> PeerKeys?) -> (ConsumedInitiation, PeerKeys)? {
        guard msg.count == MessageLayout.initiationSize else { return nil }
        var ck = initialChainingKey
        var h = initialHash
        mixHash(&h, identity.publicKey.bytes)
        guard let ephemeral = PublicKey(bytes: msg[8..<40]) else { return nil }
        mixKey(&ck, ephemeral.bytes)
        mixHash(&h, ephemeral.bytes)
        guard let es = X25519.sharedSecret(identity.privateKey, ephemeral) else { return nil }
        let k1 = mixKeyAndGetKey(&ck, es.bytes)
        let encStatic = Array(msg[40..<88])
        guard let staticBytes = ChaChaPoly.open(key: k1, counter: 0, ciphertext: encStatic, ad: h),
              let remoteStatic = PublicKey(bytes: staticBytes),
              let peer = lookup(remoteStatic), let ss = peer.staticStatic else { return nil }
        mixHash(&h, encStatic)
        let k2 = mixKeyAndGetKey(&ck, ss.bytes)
        let encTimestamp = Array(msg[88..<116])
        guard let tsBytes = ChaChaPoly.open(key: k2, counter: 0, ciphertext: encTimestamp, ad: h),
              let timestamp = TAI64N(bytes: tsBytes) else { return nil }
        mixHash(&h, encTimestamp)
        let consumed = ConsumedInitiation(remoteStatic: remoteStatic, senderIndex: msg.le32(at: 4),
                                          timestamp: timestamp, remoteEphemeral: ephemeral, hash: h,
                                          chainingKey: ck)
        return (consumed, peer)
    }

    /// Records an accepted initiation in the peer's handshake.
    public static func accept(_ c: ConsumedInitiation, into hs: inout Handshake, now: UInt64) {
        hs.clear()
        hs.stage = .consumedInitiation
        hs.hash = c.hash
        hs.chainingKey = c.chainingKey
        hs.remoteEphemeral = c.remoteEphemeral
        hs.remoteIndex = c.senderIndex
        hs.latestTimestamp = c.timestamp
        hs.lastInitiationConsumed = now
    }

    // MARK: Responder

    /// Builds the response to a consumed initiation (macs zero).
    public static func createResponse(peer: PeerKeys, handshake hs: inout Handshake, localIndex: UInt32) -> [UInt8]? {
        guard hs.stage == .consumedInitiation else { return nil }
        var ck = hs.chainingKey
        var h = hs.hash
        let ephemeral = X25519.generatePrivateKey()
        let ephemeralPublic = X25519.publicKey(for: ephemeral)
        mixKey(&ck, ephemeralPublic.bytes)
        mixHash(&h, ephemeralPublic.bytes)
        guard let ee = X25519.sharedSecret(ephemeral, hs.remoteEphemeral),
              let se = X25519.sharedSecret(ephemeral, peer.remoteStatic) else { return nil }
        mixKey(&ck, ee.bytes)
        mixKey(&ck, se.bytes)
        var out = Blake2s.kdf(key: ck, input: peer.presharedKey.bytes, count: 3)
        ck = out[0]
        mixHash(&h, out[1])
        let key = SecretKey(bytes: out[2])!
        wipe(&out[2])
        let encEmpty = ChaChaPoly.seal(key: key, counter: 0, plaintext: [], ad: h)
        mixHash(&h, encEmpty)

        var msg = [UInt8](repeating: 0, count: MessageLayout.responseSize)
        msg[0] = UInt8(MessageType.response.rawValue)
        msg.putLE32(localIndex, at: 4)
        msg.putLE32(hs.remoteIndex, at: 8)
        msg.replaceSubrange(12..<44, with: ephemeralPublic.bytes)
        msg.replaceSubrange(44..<60, with: encEmpty)

        hs.stage = .createdResponse
        hs.hash = h
        hs.chainingKey = ck
        hs.localIndex = localIndex
        return msg
    }

    // MARK: Initiator, second half

    /// Consumes a response to our initiation. Returns false (state untouched) if it does not authenticate.
    public static func consumeResponse(_ msg: [UInt8], identity: StaticIdentity, peer: PeerKeys,
                                       handshake hs: inout Handshake) -> Bool {
        guard msg.count == MessageLayout.responseSize, hs.stage == .createdInitiation,
              let ephemeralPrivate = hs.ephemeralPrivate,
              let remoteEphemeral = PublicKey(bytes: msg[12..<44]) else { return false }
        var ck = hs.chainingKey
        var h = hs.hash
        mixKey(&ck, remoteEphemeral.bytes)
        mixHash(&h, remoteEphemeral.bytes)
        guard let ee = X25519.sharedSecret(ephemeralPrivate, remoteEphemeral),
              let se = X25519.sharedSecret(identity.privateKey, remoteEphemeral) else { return false }
        mixKey(&ck, ee.bytes)
        mixKey(&ck, se.bytes)
        var out = Blake2s.kdf(key: ck, input: peer.presharedKey.bytes, count: 3)
        ck = out[0]
        mixHash(&h, out[1])
        let key = SecretKey(bytes: out[2])!
        wipe(&out[2])
        let encEmpty = Array(msg[44..<60])
        guard ChaChaPoly.open(key: key, counter: 0, ciphertext: encEmpty, ad: h) != nil else { return false }
        mixHash(&h, encEmpty)
        hs.stage = .consumedResponse
        hs.hash = h
        hs.chainingKey = ck
        hs.remoteEphemeral = remoteEphemeral
        hs.remoteIndex = msg.le32(at: 4)
        return true
    }

    // MARK: Transport keys

    /// Derives the transport keypair once the handshake is complete on either side, and clears the handshake.
    public static func beginSession(handshake hs: inout Handshake, now: UInt64, peerID: Int32) -> Keypair? {
        let isInitiator: Bool
        switch hs.stage {
        case .consumedResponse: isInitiator = true
        case .createdResponse: isInitiator = false
        default: return nil
        }
        var keys = Blake2s.kdf(key: hs.chainingKey, input: [], count: 2)
        let first = SecretKey(bytes: keys[0])!
        let second = SecretKey(bytes: keys[1])!
        wipe(&keys[0]); wipe(&keys[1])
        let keypair = Keypair(sendKey: isInitiator ? first : second, receiveKey: isInitiator ? second : first,
                              localIndex: hs.localIndex, remoteIndex: hs.remoteIndex, isInitiator: isInitiator,
                              createdAt: now, peerID: peerID)
        let (latest, consumedAt) = (hs.latestTimestamp, hs.lastInitiationConsumed)
        hs.clear()
        hs.latestTimestamp = latest
        hs.lastInitiationConsumed = consumedAt
        return keypair
    }
}
