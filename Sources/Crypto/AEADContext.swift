// AEADContext.swift: a crypto worker's own handle on the transport AEAD, with the library chosen
// once at start (AEADSelection.fastest) or by configuration.
//
// Both implementations compute the same ChaCha20-Poly1305 and are interchangeable packet by
// packet: a batch sealed by one opens with the other. A context on OpenSSL still hands small packets to
// libsodium (see `smallPacketBytes`). They differ only in speed, which depends
// on packet size and CPU: libsodium is faster on small packets, OpenSSL's AVX-512 code on large
// ones (see AEADSelection and `vpnfast bench crypto`).
//
// Batches follow AEADBatch's rules: seal writes each tag right after its plaintext and leaves
// `length` alone; open sets `ok` and on success shortens `length` by the tag. A packet whose open
// fails has ok = false and its text must be dropped (OpenSSL leaves it zeroed, libsodium untouched).

public enum AEADImplementation: String, CaseIterable, Sendable {
    case libsodium
    case openssl

    /// Whether this library can run ChaCha20-Poly1305 in this process; checked once.
    public var isAvailable: Bool {
        switch self {
        case .libsodium: CryptoLibrary.initialize()
        case .openssl: Self.opensslWorks
        }
    }

    private static let opensslWorks: Bool = OpenSSLChaChaPoly() != nil
}

/// Owned by one worker thread: the OpenSSL contexts inside carry per-packet state, so two threads
/// must never seal or open through the same AEADContext at once. It is Sendable only so that it can
/// be created up front and handed to the thread that will own it.
public final class AEADContext: @unchecked Sendable {
    public let implementation: AEADImplementation
    private let openssl: OpenSSLChaChaPoly?

    /// Traps if `implementation` is not available (check `isAvailable` first when it comes from
    /// configuration): running without the chosen cipher is not a state to carry on from.
    public init(_ implementation: AEADImplementation) {
        precondition(implementation.isAvailable, "\(implementation.rawValue) cannot run ChaCha20-Poly1305 here")
        self.implementation = implementation
        switch implementation {
        case .libsodium:
            openssl = nil
        case .openssl:
            guard let engine = OpenSSLChaChaPoly() else { preconditionFailure("OpenSSL EVP context setup failed") }
            openssl = engine
        }
    }

    /// Encrypts each item in place and writes its tag right after the plaintext. Sets ok = true;
    /// false only if OpenSSL reports an internal error, in which case text and tag are zeroed and
    /// the packet must be dropped.
    public func seal(_ items: UnsafeMutableBufferPointer<AEADItem>) {
        guard let openssl else { return AEADBatch.seal(items) }
        for index in items.indices {
            let item = items[index]
            if item.length <= AEADContext.smallPacketBytes {
                AEADBatch.seal(UnsafeMutableBufferPointer(rebasing: items[index..<index + 1]))
                continue
            }
            items[index].ok = openssl.seal(key: item.key, counter: item.counter, buffer: item.data,
                                           length: Int(item.length))
        }
    }

    /// Packets up to this many bytes (plaintext to seal, or ciphertext + tag to open) go through libsodium even
    /// when OpenSSL is chosen: OpenSSL's per-call cost (EVP parameter lookups on every tag get/set) outweighs
    /// its faster bulk code on small packets. `vpnfast bench crypto` on the project's machine: 64 B seal 2.03
    /// Mpps with libsodium against 1.14 with OpenSSL; at 1420 B OpenSSL is ahead (0.61 against 0.50 Mpps).
    public static let smallPacketBytes: Int32 = 256

    /// Verifies and decrypts each item in place. Sets ok; on success also length -= 16.
    public func open(_ items: UnsafeMutableBufferPointer<AEADItem>) {
        guard let openssl else { return AEADBatch.open(items) }
        for index in items.indices {
            let item = items[index]
            if item.length <= AEADContext.smallPacketBytes + Int32(ChaChaPoly.tagSize) {
                AEADBatch.open(UnsafeMutableBufferPointer(rebasing: items[index..<index + 1]))
                continue
            }
            let ok = openssl.open(key: item.key, counter: item.counter, buffer: item.data, length: Int(item.length))
            items[index].ok = ok
            if ok { items[index].length = item.length - Int32(ChaChaPoly.tagSize) }
        }
    }
}
