// Keys.swift: 32-byte key values.
//
// `Key32` holds public values (public keys, hashes, chaining keys that are fine to copy): a
// plain value stored inline, so arrays and dictionaries of them cost no extra allocations.
// `SecretKey` holds private keys, preshared keys and session keys: one private allocation per
// key that is never copied by the type itself and is wiped when the key goes away.

import CSodium

public struct Key32: Hashable, Sendable, CustomStringConvertible {
    public static let byteCount = 32

    /// The 32 bytes in memory order. A tuple so the bytes are contiguous and need no heap.
    private var storage: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

    /// All zero.
    public init() {}

    /// Nil unless `bytes` holds exactly 32 bytes.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == Key32.byteCount else { return nil }
        withUnsafeMutableBytes { $0.copyBytes(from: bytes) }
    }

    /// Copies 32 bytes starting at `pointer` (for example a key field inside a received message).
    public init(copying pointer: UnsafeRawPointer) {
        withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(start: pointer, count: Key32.byteCount)) }
    }

    /// Standard base64 with padding: exactly 44 characters that decode to 32 bytes.
    public init?(base64: String) {
        let ok = withUnsafeMutableBytes { KeyEncoding.decodeBase64(base64, into: $0.baseAddress!) }
        guard ok else { return nil }
    }

    /// Exactly 64 hex digits, either case.
    public init?(hex: String) {
        let ok = withUnsafeMutableBytes { KeyEncoding.decodeHex(hex, into: $0.baseAddress!) }
        guard ok else { return nil }
    }

    public var base64: String { withUnsafeBytes { KeyEncoding.base64($0) } }

    /// Lowercase hex, as the UAPI writes keys.
    public var hex: String { withUnsafeBytes { KeyEncoding.hex($0) } }

    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    public var isZero: Bool { (storage.0 | storage.1 | storage.2 | storage.3) == 0 }

    public var description: String { base64 }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeBytes(of: storage, body)
    }

    public mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeMutableBytes(of: &storage, body)
    }

    public static func == (lhs: Key32, rhs: Key32) -> Bool {
        lhs.storage.0 == rhs.storage.0 && lhs.storage.1 == rhs.storage.1
            && lhs.storage.2 == rhs.storage.2 && lhs.storage.3 == rhs.storage.3
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(storage.0)
        hasher.combine(storage.1)
        hasher.combine(storage.2)
        hasher.combine(storage.3)
    }
}

public typealias PublicKey = Key32

// Sendable is unchecked because the class holds a raw pointer; that is sound because the
// 32 bytes are written only during init and never mutated until deinit, when no reference remains.
public final class SecretKey: @unchecked Sendable {
    public static let byteCount = 32

    private let pointer: UnsafeMutableRawPointer

    /// Allocates the 32 bytes and lets `body` write all of them. The designated initialiser
    /// every other one funnels through; the bytes start zeroed so a partial write leaks nothing.
    public init(initializingWith body: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: SecretKey.byteCount, alignment: 16)
        pointer.initializeMemory(as: UInt8.self, repeating: 0, count: SecretKey.byteCount)
        do {
            try body(UnsafeMutableRawBufferPointer(start: pointer, count: SecretKey.byteCount))
        } catch {
            sodium_memzero(pointer, SecretKey.byteCount)
            pointer.deallocate()
            throw error
        }
        self.pointer = pointer
    }

    deinit {
        sodium_memzero(pointer, SecretKey.byteCount)
        pointer.deallocate()
    }

    /// All zero (for example an unset preshared key).
    public convenience init() {
        self.init(initializingWith: { _ in })
    }

    /// Nil unless `bytes` holds exactly 32 bytes.
    public convenience init?(bytes: some Collection<UInt8>) {
        guard bytes.count == SecretKey.byteCount else { return nil }
        self.init(initializingWith: { $0.copyBytes(from: bytes) })
    }

    /// Standard base64 with padding: exactly 44 characters that decode to 32 bytes.
    public convenience init?(base64: String) {
        guard let key = SecretKey.decoded({ KeyEncoding.decodeBase64(base64, into: $0) }) else { return nil }
        self.init(initializingWith: { $0.copyMemory(from: UnsafeRawBufferPointer(start: key.pointer, count: SecretKey.byteCount)) })
    }

    /// Exactly 64 hex digits, either case.
    public convenience init?(hex: String) {
        guard let key = SecretKey.decoded({ KeyEncoding.decodeHex(hex, into: $0) }) else { return nil }
        self.init(initializingWith: { $0.copyMemory(from: UnsafeRawBufferPointer(start: key.pointer, count: SecretKey.byteCount)) })
    }

    /// 32 random bytes, not clamped (use `X25519.generatePrivateKey()` for a private key).
    public static func random() -> SecretKey {
        SecretKey(initializingWith: { SecureRandom.fill($0) })
    }

    public var base64: String { withUnsafeBytes { KeyEncoding.base64($0) } }

    public var hex: String { withUnsafeBytes { KeyEncoding.hex($0) } }

    /// A copy of the secret bytes; the copy is the caller's to wipe.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// Constant time (sodium_is_zero).
    public var isZero: Bool { sodium_is_zero(pointer.assumingMemoryBound(to: UInt8.self), SecretKey.byteCount) == 1 }

    /// The 32 key bytes. Stable and readable for as long as this object is alive; the caller
    /// must keep a reference for the whole time it uses the pointer.
    public var unsafePointer: UnsafeRawPointer { UnsafeRawPointer(pointer) }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: pointer, count: SecretKey.byteCount))
    }

    /// Constant time (sodium_memcmp).
    public func constantTimeEquals(_ other: SecretKey) -> Bool {
        sodium_memcmp(pointer, other.pointer, SecretKey.byteCount) == 0
    }

    /// Decodes into a temporary key, so a failed parse never leaves a half-filled object behind;
    /// the temporary wipes itself when it goes away.
    private static func decoded(_ decode: (UnsafeMutableRawPointer) -> Bool) -> SecretKey? {
        var ok = false
        let key = SecretKey(initializingWith: { ok = decode($0.baseAddress!) })
        return ok ? key : nil
    }
}
