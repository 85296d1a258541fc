// Library.swift: one-time libsodium setup and secure zeroing.
//
// sodium_init() picks the fastest ChaCha20, Poly1305 and Curve25519 code for this CPU and
// seeds the random generator. It must run before any other libsodium call; every public
// entry point of this module that reaches libsodium calls `CryptoLibrary.initialize()`
// first, so callers never have to.

import CSodium

public enum CryptoLibrary {
    /// Swift runs a global `static let` initialiser exactly once, thread-safely, on first use.
    /// sodium_init returns 0 on first success, 1 if it already ran, -1 on failure.
    private static let initialized: Bool = sodium_init() >= 0

    /// Initialises libsodium on the first call; later calls only read a flag.
    /// Returns false if libsodium could not be initialised (nothing in this module is usable then).
    @discardableResult
    public static func initialize() -> Bool {
        initialized
    }

    /// Traps if libsodium is unusable: carrying on would mean weak randomness or no crypto at all.
    @inline(__always)
    static func require() {
        precondition(initialized, "libsodium could not be initialised (sodium_init failed)")
    }
}

public enum Memory {
    /// Overwrites the buffer with zeros in a way the optimiser may not remove (sodium_memzero).
    public static func zero(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        sodium_memzero(base, buffer.count)
    }
}
