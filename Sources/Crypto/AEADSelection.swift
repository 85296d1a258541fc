// AEADSelection.swift: which AEAD library is faster on this CPU, measured in-process.
//
// Which library wins depends on the CPU (OpenSSL's AVX-512 ChaCha20 and Poly1305 against
// libsodium's AVX2 ChaCha20 and scalar Poly1305) and on the packet size, so vpnfast measures
// instead of guessing: `fastest()` seals and opens batches of full-size packets for a few tens of
// milliseconds per library and is meant to be called once at start. `vpnfast bench crypto` runs
// the same measurement for longer and at several sizes.
//
// How a measurement runs: a batch of packets in one contiguous slab, one random key, one
// AEADContext per library. Time is split into rounds; each round gives every library a slice for
// seal and a slice for open, so a burst of load from other processes hurts all libraries alike,
// and the best slice counts. Open slices copy the sealed packets back in before every batch (the
// ciphertext is consumed in place); that copy is included in the open time, as a received packet
// would have been copied in too.

import Glibc

/// Single-core throughput of one library at one packet size. Bytes count the payload only (not
/// the 16-byte tag).
public struct AEADThroughput: Equatable, Sendable {
    public var implementation: AEADImplementation
    public var packetSize: Int
    public var sealPacketsPerSecond: Double
    public var openPacketsPerSecond: Double

    public var sealGBps: Double { sealPacketsPerSecond * Double(packetSize) / 1e9 }
    public var openGBps: Double { openPacketsPerSecond * Double(packetSize) / 1e9 }
    public var sealMpps: Double { sealPacketsPerSecond / 1e6 }
    public var openMpps: Double { openPacketsPerSecond / 1e6 }

    /// Seconds of one core to seal one packet and open one (a bidirectional flow's cost per pair).
    public var secondsPerSealAndOpen: Double { 1 / sealPacketsPerSecond + 1 / openPacketsPerSecond }
}

public enum AEADSelection {
    /// Measures seal and open for each library on the calling thread. `seconds` is the time for
    /// each (library, operation) pair, spread over `rounds` interleaved slices.
    public static func measure(packetSize: Int = 1420, seconds: Double = 0.04, batchSize: Int = 128,
                               rounds: Int = 4,
                               implementations: [AEADImplementation] = AEADImplementation.allCases)
        -> [AEADThroughput] {
        precondition(packetSize >= 0 && packetSize <= 65535 && batchSize > 0 && rounds > 0 && seconds > 0,
                     "AEAD measurement parameters out of range")
        let available = implementations.filter(\.isAvailable)
        let bench = Workload(packetSize: packetSize, batchSize: batchSize)
        defer { bench.deallocate() }
        let contexts = available.map { AEADContext($0) }
        let sliceNanoseconds = UInt64(seconds / Double(rounds) * 1e9)

        // Warm up: first calls fault in code and tables and let the clock ramp up.
        for context in contexts {
            _ = bench.run(.seal, with: context, nanoseconds: sliceNanoseconds / 4)
            _ = bench.run(.open, with: context, nanoseconds: sliceNanoseconds / 4)
        }
        var best = [(seal: Double, open: Double)](repeating: (0, 0), count: contexts.count)
        for _ in 0..<rounds {
            for (index, context) in contexts.enumerated() {
                best[index].seal = max(best[index].seal, bench.run(.seal, with: context, nanoseconds: sliceNanoseconds))
                best[index].open = max(best[index].open, bench.run(.open, with: context, nanoseconds: sliceNanoseconds))
            }
        }
        return zip(available, best).map {
            AEADThroughput(implementation: $0, packetSize: packetSize,
                           sealPacketsPerSecond: $1.seal, openPacketsPerSecond: $1.open)
        }
    }

    /// The library that seals plus opens a `packetSize` packet in the least time on this core
    /// (about 0.1 s of measuring per available library). With one library available, no
    /// measurement runs; on a tie libsodium, the long-standing default, is kept.
    public static func fastest(packetSize: Int = 1420) -> AEADImplementation {
        let available = AEADImplementation.allCases.filter(\.isAvailable)
        guard available.count > 1 else { return available.first ?? .libsodium }
        let results = measure(packetSize: packetSize, implementations: available)
        var choice = results[0]
        for result in results.dropFirst() where result.secondsPerSealAndOpen < choice.secondsPerSealAndOpen {
            choice = result
        }
        return choice.implementation
    }
}

/// The packets a measurement works on: `batchSize` packets with room for their tags, a sealed
/// copy of them for the open slices, and the items pointing into the slab.
private struct Workload {
    enum Operation { case seal, open }

    let packetSize: Int
    let stride: Int
    let slab: UnsafeMutableRawBufferPointer
    let sealed: UnsafeMutableRawBufferPointer
    let items: UnsafeMutableBufferPointer<AEADItem>
    let key: SecretKey

    init(packetSize: Int, batchSize: Int) {
        self.packetSize = packetSize
        stride = (packetSize + ChaChaPoly.tagSize + 63) & ~63
        slab = .allocate(byteCount: stride * batchSize, alignment: 64)
        sealed = .allocate(byteCount: stride * batchSize, alignment: 64)
        items = .allocate(capacity: batchSize)
        key = SecretKey.random()
        SecureRandom.fill(slab)
        for index in 0..<batchSize {
            items.initializeElement(at: index, to: AEADItem(
                data: slab.baseAddress! + index * stride, key: key.unsafePointer,
                counter: UInt64(index), length: Int32(packetSize)))
        }
        AEADBatch.seal(items)
        sealed.copyMemory(from: UnsafeRawBufferPointer(slab))
    }

    func deallocate() {
        slab.deallocate()
        sealed.deallocate()
        items.deallocate()
        withExtendedLifetime(key) {}
    }

    /// Runs whole batches of `operation` for at least `nanoseconds`; returns packets per second.
    func run(_ operation: Operation, with context: AEADContext, nanoseconds: UInt64) -> Double {
        var packets = 0
        let start = monotonicNanoseconds()
        var elapsed: UInt64 = 0
        repeat {
            switch operation {
            case .seal:
                // Fresh counters each batch, as on a live session; the text is whatever is there.
                for index in items.indices {
                    items[index].counter &+= UInt64(items.count)
                    items[index].length = Int32(packetSize)
                }
                context.seal(items)
            case .open:
                slab.copyMemory(from: UnsafeRawBufferPointer(sealed))
                for index in items.indices {
                    items[index].counter = UInt64(index)
                    items[index].length = Int32(packetSize + ChaChaPoly.tagSize)
                }
                context.open(items)
            }
            packets += items.count
            elapsed = monotonicNanoseconds() - start
        } while elapsed < nanoseconds
        precondition(items.allSatisfy(\.ok), "AEAD measurement: \(operation) failed")
        return Double(packets) / (Double(elapsed) / 1e9)
    }
}

private func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}
