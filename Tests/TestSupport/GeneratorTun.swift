// A TUN that plays a steady traffic source and a counting sink without allocating per packet or per call, for
// allocation-counting benchmarks and load tests (ChannelTun copies every packet into a new array).
//
// Source: `release(n)` allows n more reads of one fixed template packet; `read` hands out up to a batch of copies
// of it and, once the allowance is used up, waits for more (or its timeout, or `wake()`).
// Sink: `write` counts packets and bytes and, when told what to expect, compares each packet with that template.
// A canary sink allocates once per written packet on purpose, so a benchmark can show that its counting sees the
// device's threads.
import Dataplane
import Glibc

public final class GeneratorTun: TunInterface, @unchecked Sendable {  // counters and allowance: under `lock`
    public let name: String
    public let batchSize: Int
    private let lock = ConditionLock()

    private let template: UnsafeMutableRawPointer
    private let templateLength: Int
    private var allowance = 0
    private var readCount = 0
    private var woken = false
    private var closed = false

    private let expected: UnsafeMutableRawPointer?
    private let expectedLength: Int
    private var written = 0
    private var writtenBytes = 0
    private var mismatched = 0
    private let canary: Bool
    /// The canary's latest allocation (kept until the next one, so the compiler cannot drop the pair).
    private var canaryBlock: UnsafeMutableRawPointer?

    /// `packet`: what every read returns. `expect`: what every written packet must equal (nil: not checked).
    /// `canary`: allocate once per written packet.
    public init(name: String = "gen0", packet: [UInt8], expect: [UInt8]? = nil,
                batchSize: Int = PacketBatch.capacity, canary: Bool = false) {
        self.name = name
        self.batchSize = batchSize
        self.canary = canary
        template = Self.copy(packet)
        templateLength = packet.count
        expected = expect.map(Self.copy)
        expectedLength = expect?.count ?? 0
    }

    deinit {
        template.deallocate()
        expected?.deallocate()
        free(canaryBlock)
    }

    private static func copy(_ bytes: [UInt8]) -> UnsafeMutableRawPointer {
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        bytes.withUnsafeBytes { if let base = $0.baseAddress { p.copyMemory(from: base, byteCount: $0.count) } }
        return p
    }

    // MARK: Source

    /// Lets the device read `count` more packets.
    public func release(_ count: Int) {
        lock.withLock {
            allowance += count
            lock.broadcast()
        }
    }

    /// Packets the device has read so far.
    public var packetsRead: Int { lock.withLock { readCount } }

    public func read(_ buffers: UnsafePointer<UnsafeMutableRawPointer>, capacity: Int,
                     lengths: UnsafeMutablePointer<UInt32>, count: Int, timeoutMs: Int32) throws -> Int {
        let n = lock.withLock { () -> Int in
            if allowance == 0 && !woken && !closed {
                lock.wait(nanoseconds: UInt64(max(timeoutMs, 1)) * 1_000_000)
            }
            woken = false
            let n = min(allowance, count, batchSize)
            allowance -= n
            readCount += n
            return n
        }
        // Only this reader writes into the buffers it was handed, so the copies need no lock.
        let length = min(templateLength, capacity)
        for i in 0..<n {
            buffers[i].copyMemory(from: template, byteCount: length)
            lengths[i] = UInt32(length)
        }
        return n
    }

    // MARK: Sink

    public func write(_ buffers: UnsafePointer<UnsafeMutableRawPointer>, lengths: UnsafePointer<UInt32>,
                      count: Int) -> Int {
        var bytes = 0
        var bad = 0
        for i in 0..<count {
            let length = Int(lengths[i])
            bytes += length
            if let expected, length != expectedLength || memcmp(buffers[i], expected, length) != 0 { bad += 1 }
            if canary {  // writes never overlap (the device serializes them under its delivery lock)
                free(canaryBlock)
                canaryBlock = malloc(32)
            }
        }
        lock.withLock {
            written += count
            writtenBytes += bytes
            mismatched += bad
            lock.broadcast()
        }
        return count
    }

    /// Packets written to this TUN so far, their bytes, and how many differed from the expected packet.
    public var sinkCounts: (packets: Int, bytes: Int, mismatched: Int) {
        lock.withLock { (written, writtenBytes, mismatched) }
    }

    /// Waits until at least `count` packets were written in all; false if `timeoutNanoseconds` passed first.
    @discardableResult
    public func waitForWritten(atLeast count: Int, timeoutNanoseconds: UInt64) -> Bool {
        let deadline = SystemClock().now() + timeoutNanoseconds
        return lock.withLock {
            while written < count {
                let now = SystemClock().now()
                if now >= deadline { return false }
                lock.wait(nanoseconds: deadline - now)
            }
            return true
        }
    }

    public func wake() { lock.withLock { woken = true; lock.broadcast() } }
    public func close() { lock.withLock { closed = true; lock.broadcast() } }
}
