import XCTest
@testable import Crypto

/// The OpenSSL path against the RFC vectors and against libsodium, packet for packet.
final class AEADContextTests: XCTestCase {
    // 256 and 257: either side of the size up to which an OpenSSL context hands packets to libsodium.
    static let lengths = [0, 1, 15, 16, 64, 240, 256, 257, 272, 1420, 9000, 65535]

    /// Packets in their own buffers (room for the tag), with items that point at them.
    final class Batch {
        let keys: [SecretKey]
        let plaintexts: [[UInt8]]
        let buffers: [UnsafeMutableRawBufferPointer]
        var items: [AEADItem]

        /// One packet per length, keys taken in turn, random counters.
        init(lengths: [Int], keys: [SecretKey]) {
            self.keys = keys
            let plaintexts = lengths.map { SecureRandom.bytes($0) }
            let buffers = plaintexts.map {
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: $0.count + 16, alignment: 16)
                buffer.copyBytes(from: $0 + [UInt8](repeating: 0, count: 16))
                return buffer
            }
            items = buffers.indices.map {
                AEADItem(data: buffers[$0].baseAddress!, key: keys[$0 % keys.count].unsafePointer,
                         counter: SecureRandom.uint64(), length: Int32(plaintexts[$0].count))
            }
            self.plaintexts = plaintexts
            self.buffers = buffers
        }

        deinit { buffers.forEach { $0.deallocate() } }

        func seal(_ context: AEADContext) { items.withUnsafeMutableBufferPointer { context.seal($0) } }

        /// Opens what `seal` left: length grows by the tag first.
        func open(_ context: AEADContext) {
            for index in items.indices where items[index].ok {
                items[index].length += 16
                items[index].ok = false
            }
            items.withUnsafeMutableBufferPointer { context.open($0) }
        }

        func sealedBytes(_ index: Int) -> [UInt8] { Array(buffers[index]) }
    }

    override func setUp() {
        XCTAssertTrue(AEADImplementation.libsodium.isAvailable)
        XCTAssertTrue(AEADImplementation.openssl.isAvailable, "libcrypto without ChaCha20-Poly1305")
    }

    func testRFC8439VectorsThroughOpenSSL() throws {
        let openssl = try XCTUnwrap(OpenSSLChaChaPoly())
        for v in AEADTests.vectors {
            var buffer = v.plaintext + [UInt8](repeating: 0, count: 16)
            let sealed = buffer.withUnsafeMutableBytes { buffer in
                v.ad.withUnsafeBytes { ad in
                    openssl.seal(key: v.key, nonce: v.nonce, buffer: buffer.baseAddress!,
                                 length: v.plaintext.count, ad: ad)
                }
            }
            XCTAssertTrue(sealed, v.name)
            XCTAssertEqual(buffer, v.ciphertext + v.tag, v.name)

            for flip in [nil, 0, v.ciphertext.count + 15] as [Int?] {
                var buffer = v.ciphertext + v.tag
                if let flip { buffer[flip] ^= 0x04 }
                let opened = buffer.withUnsafeMutableBytes { buffer in
                    v.ad.withUnsafeBytes { ad in
                        openssl.open(key: v.key, nonce: v.nonce, buffer: buffer.baseAddress!,
                                     length: buffer.count, ad: ad)
                    }
                }
                if flip == nil {
                    XCTAssertTrue(opened, v.name)
                    XCTAssertEqual(Array(buffer.dropLast(16)), v.plaintext, v.name)
                } else {
                    XCTAssertFalse(opened, "\(v.name), byte \(flip!) flipped")
                    XCTAssertEqual(Array(buffer.dropLast(16)), [UInt8](repeating: 0, count: v.plaintext.count),
                                   "a failed open leaves no plaintext")
                }
            }
        }
    }

    /// Random keys, counters and contents at every length: both libraries write the same bytes.
    func testOpenSSLSealsExactlyAsLibsodium() {
        let sodium = AEADContext(.libsodium), openssl = AEADContext(.openssl)
        for round in 0..<4 {
            let keys = (0..<3).map { _ in SecretKey.random() }
            let a = Batch(lengths: Self.lengths, keys: keys)
            let b = Batch(lengths: Self.lengths, keys: keys)
            for index in a.items.indices {
                b.buffers[index].copyMemory(from: UnsafeRawBufferPointer(a.buffers[index]))
                b.items[index].counter = a.items[index].counter
            }
            if round == 0 { a.items[0].counter = 0; a.items[1].counter = .max }   // the nonce's edges
            b.items[0].counter = a.items[0].counter
            b.items[1].counter = a.items[1].counter
            a.seal(sodium)
            b.seal(openssl)
            for index in a.items.indices {
                XCTAssertTrue(a.items[index].ok && b.items[index].ok)
                XCTAssertEqual(b.items[index].length, a.items[index].length, "seal leaves length alone")
                XCTAssertEqual(Int(b.items[index].length), Self.lengths[index])
                XCTAssertEqual(b.sealedBytes(index), a.sealedBytes(index), "length \(Self.lengths[index])")
            }
        }
    }

    /// Each library opens what the other sealed, with several keys mixed in one batch.
    func testEitherLibraryOpensTheOthersMixedKeyBatch() {
        let keys = (0..<3).map { _ in SecretKey.random() }
        for (sealer, opener) in [(AEADImplementation.openssl, AEADImplementation.libsodium),
                                 (.libsodium, .openssl), (.openssl, .openssl), (.libsodium, .libsodium)] {
            let batch = Batch(lengths: Self.lengths + Self.lengths.reversed(), keys: keys)
            batch.seal(AEADContext(sealer))
            batch.open(AEADContext(opener))
            for (index, item) in batch.items.enumerated() {
                XCTAssertTrue(item.ok, "\(sealer) → \(opener), packet \(index)")
                XCTAssertEqual(Int(item.length), batch.plaintexts[index].count)
                XCTAssertEqual(Array(batch.buffers[index].prefix(Int(item.length))), batch.plaintexts[index],
                               "\(sealer) → \(opener), packet \(index)")
            }
        }
    }

    /// Spoiled packets fail alone, in the middle of a batch, with either library; the packets after
    /// a failure still open (the reused OpenSSL context carries nothing over).
    func testTamperedPacketsFailAloneWithEitherLibrary() {
        let keys = (0..<2).map { _ in SecretKey.random() }
        let wrongKey = SecretKey.random()
        for implementation in AEADImplementation.allCases {
            let batch = Batch(lengths: Self.lengths + Self.lengths, keys: keys)
            batch.seal(AEADContext(.libsodium))
            for index in batch.items.indices {
                batch.items[index].length += 16
                batch.items[index].ok = false
            }
            // How each spoiled packet is spoiled; the others stay intact.
            let spoil: [Int: String] = [0: "tag", 2: "text", 4: "counter", 6: "key", 9: "short", 11: "counter high half",
                                        13: "text", 15: "tag"]
            for (index, how) in spoil {
                let buffer = batch.buffers[index]
                switch how {
                case "tag": buffer[buffer.count - 1] ^= 0x80
                case "text": buffer[buffer.count / 3] ^= 0x01    // lengths > 0 here
                case "counter": batch.items[index].counter &+= 1
                case "counter high half": batch.items[index].counter ^= 1 << 40
                case "key": batch.items[index].key = wrongKey.unsafePointer
                default: batch.items[index].length = 15
                }
            }
            let before = batch.items
            batch.items.withUnsafeMutableBufferPointer { AEADContext(implementation).open($0) }
            for (index, item) in batch.items.enumerated() {
                let name = "\(implementation), packet \(index)"
                if let how = spoil[index] {
                    XCTAssertFalse(item.ok, "\(name) (\(how))")
                    XCTAssertEqual(item.length, before[index].length, "\(name): length kept on failure")
                    if implementation == .openssl, how != "short" {
                        let text = batch.buffers[index].prefix(Int(item.length) - 16)
                        XCTAssertTrue(text.allSatisfy { $0 == 0 }, "\(name): no plaintext left behind")
                    }
                } else {
                    XCTAssertTrue(item.ok, name)
                    XCTAssertEqual(Array(batch.buffers[index].prefix(Int(item.length))), batch.plaintexts[index], name)
                }
            }
        }
        withExtendedLifetime(wrongKey) {}
    }

    func testEmptyBatches() {
        for implementation in AEADImplementation.allCases {
            let context = AEADContext(implementation)
            context.seal(UnsafeMutableBufferPointer(start: nil, count: 0))
            context.open(UnsafeMutableBufferPointer(start: nil, count: 0))
        }
    }

    func testImplementationNames() {
        XCTAssertEqual(AEADImplementation.allCases.map(\.rawValue), ["libsodium", "openssl"])
        XCTAssertEqual(AEADImplementation(rawValue: "openssl"), .openssl)
    }

    /// The measurement itself (kept short: this is a debug build); it reports every library and
    /// picks one of them.
    func testSelectionMeasuresEveryLibrary() {
        let results = AEADSelection.measure(packetSize: 256, seconds: 0.01, batchSize: 8, rounds: 2)
        XCTAssertEqual(results.map(\.implementation), AEADImplementation.allCases)
        for result in results {
            XCTAssertEqual(result.packetSize, 256)
            XCTAssertGreaterThan(result.sealPacketsPerSecond, 0)
            XCTAssertGreaterThan(result.openPacketsPerSecond, 0)
            XCTAssertEqual(result.sealGBps, result.sealPacketsPerSecond * 256 / 1e9, accuracy: 1e-9)
        }
        XCTAssertEqual(AEADSelection.measure(packetSize: 0, seconds: 0.002, batchSize: 1, rounds: 1,
                                             implementations: [.openssl]).map(\.implementation), [.openssl])
        XCTAssertTrue(AEADImplementation.allCases.contains(AEADSelection.fastest(packetSize: 64)))
    }
}
