// The kernel TUN device with IFF_VNET_HDR and offloads: reads hand us super-packets (TSO/USO) that are split here
// into MTU-sized packets; writes coalesce TCP (and UDP, with USO) segments of a flow back into super-packets.
// Without offloads (`offloads: false`, or a kernel that refuses them) every read and write is one plain packet.
import CShims
import Glibc

public final class LinuxTun: TunInterface, @unchecked Sendable {  // fds are fixed after init; read state belongs to the reading thread, write state to whichever thread holds the device's delivery lock
    public let name: String
    public let batchSize: Int
    /// The TUN_F_* offload bits the kernel accepted (0: none).
    public let offloadFlags: UInt32
    private let fd: Int32
    private let wakeFD: Int32
    private let vnet: Bool
    private let counters: Counters?

    // Read side.
    private let scratch: UnsafeMutableRawPointer
    private static let scratchSize = VirtioNetHeader.size + 65536
    private var pendingLength = 0

    // Write side.
    private var coalescer: GROCoalescer
    private var writes: [TunWrite] = []
    private var slices: [IOSlice] = []
    private let iov: UnsafeMutablePointer<iovec>
    private let iovCapacity: Int
    private let vnetOut: UnsafeMutableRawPointer

    /// --io uring: the rings (nil: read(2) and writev(2)), and how that was decided.
    private var ring: TunRing?
    public private(set) var ioNote = "read/writev"

    /// `uring`: read and write through io_uring (TunRing.swift) when `TunRing.probe` finds it works; see
    /// `ioNote` for what was chosen and why.
    public init(name requested: String, batchSize: Int = PacketBatch.capacity, offloads: Bool = true,
                uring: Bool = false, counters: Counters? = nil) throws {
        var out = [CChar](repeating: 0, count: 32)
        let fd = vf_tun_open(requested, &out, offloads ? 1 : 0)
        if fd < 0 { throw SystemError("open TUN \(requested)", negated: Int(fd)) }
        let wake = vf_eventfd()
        if wake < 0 { _ = vf_close(fd); throw SystemError("eventfd", negated: Int(wake)) }
        self.fd = fd
        self.wakeFD = wake
        self.batchSize = batchSize
        self.vnet = offloads
        self.counters = counters
        self.name = String(decoding: out.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        offloadFlags = offloads ? vf_tun_enable_offloads(fd) : 0
        let uso = offloadFlags & UInt32(VF_TUN_F_USO4) != 0
        coalescer = GROCoalescer(udpEnabled: uso, batchCapacity: max(batchSize, 1024))
        scratch = .allocate(byteCount: LinuxTun.scratchSize, alignment: 64)
        iovCapacity = 1 + 64
        iov = .allocate(capacity: iovCapacity)
        iov.initialize(repeating: iovec(), count: iovCapacity)
        vnetOut = .allocate(byteCount: VirtioNetHeader.size, alignment: 8)
        writes.reserveCapacity(1024)
        slices.reserveCapacity(1024)
        if uring {
            let (ok, why) = TunRing.probe(fd: fd)
            if ok {
                do {
                    ring = try TunRing(fd: fd, wakeFD: wake, writeCapacity: max(batchSize, 1024))
                    ioNote = "io_uring (\(why))"
                } catch {
                    ioNote = "read/writev (io_uring rings for the TUN failed: \(error))"
                }
            } else {
                ioNote = "read/writev (\(why))"
            }
        }
    }

    /// Whether the TUN's reads and writes go through io_uring.
    public var usesRing: Bool { ring != nil }

    /// TCP segmentation offload is on: reads may be super-packets.
    public var segmentationOffload: Bool {
        offloadFlags & UInt32(VF_TUN_F_TSO4 | VF_TUN_F_TSO6) != 0
    }

    public func read(_ buffers: UnsafePointer<UnsafeMutableRawPointer>, capacity: Int,
                     lengths: UnsafeMutablePointer<UInt32>, count: Int, timeoutMs: Int32) throws -> Int {
        if let ring { return try readRing(ring, buffers, capacity: capacity, lengths: lengths, count: count,
                                          timeoutMs: timeoutMs) }
        if !vnet { return try readPlain(buffers, capacity: capacity, lengths: lengths, count: count, timeoutMs: timeoutMs) }
        var n = 0
        while n < count {
            var r: Int
            if pendingLength > 0 {
                r = pendingLength
                pendingLength = 0
            } else {
                r = vf_read(fd, scratch, LinuxTun.scratchSize)
                if r == -Int(EAGAIN) {
                    if n > 0 { return n }
                    let p = vf_poll2(fd, wakeFD, timeoutMs)
                    if p < 0 { throw SystemError("poll TUN", negated: Int(p)) }
                    if p & 2 != 0 { _ = vf_eventfd_drain(wakeFD); return 0 }
                    if p == 0 { return 0 }
                    continue
                }
                if r < 0 {
                    if n > 0 { return n }
                    throw SystemError("read TUN", negated: r)
                }
            }
            switch intake(scratch, r, buffers, capacity: capacity, lengths: lengths, at: n, count: count) {
            case .took(let k): n += k
            case .dropped: break
            case .full:
                // Not enough room left in this batch: keep the super-packet for the next call.
                pendingLength = r
                return n
            }
        }
        return n
    }

    private enum Intake { case took(Int), dropped, full }

    /// Puts one read of `r` bytes at `p` (virtio header + packet, or a plain packet without offloads) into the
    /// caller's buffers from index `n` on: split if it is a super-packet. A bad one is counted and dropped;
    /// `.full` when its segments do not fit in what is left of the batch (never for an empty batch).
    private func intake(_ p: UnsafeMutableRawPointer, _ r: Int, _ buffers: UnsafePointer<UnsafeMutableRawPointer>,
                        capacity: Int, lengths: UnsafeMutablePointer<UInt32>, at n: Int, count: Int) -> Intake {
        if !vnet {
            guard r > 0 && r <= capacity else { counters?.add(.txDropBadInner); return .dropped }
            buffers[n].copyMemory(from: p, byteCount: r)
            lengths[n] = UInt32(r)
            return .took(1)
        }
        guard r > VirtioNetHeader.size else {
            counters?.add(.txDropBadOffload)
            return .dropped
        }
        let header = VirtioNetHeader(reading: p)
        let result = GSOSplit.split(header: header, packet: p + VirtioNetHeader.size,
                                    length: r - VirtioNetHeader.size, outputs: buffers + n, capacity: capacity,
                                    outLengths: lengths + n, maxSegments: count - n)
        switch result {
        case .success(let segments): return .took(segments)
        case .failure(.tooManySegments) where n > 0: return .full
        case .failure:
            counters?.add(.txDropBadOffload)
            return .dropped
        }
    }

    /// --io uring: packets come from the ring's armed reads. The first wait may block (up to `timeoutMs`);
    /// once the batch has a packet, the ring is only asked for completions already there.
    private func readRing(_ ring: TunRing, _ buffers: UnsafePointer<UnsafeMutableRawPointer>, capacity: Int,
                          lengths: UnsafeMutablePointer<UInt32>, count: Int, timeoutMs: Int32) throws -> Int {
        var n = 0
        while n < count {
            let got: (slot: UInt32, buffer: UnsafeMutableRawPointer, result: Int32)?
            do {
                got = try ring.next(timeoutMs: n > 0 ? 0 : timeoutMs)
            } catch {
                if n > 0 { return n }
                throw error
            }
            guard let (_, buffer, r) = got else { return n }
            if r < 0 {
                ring.consume()
                if n > 0 { return n }
                throw SystemError("read TUN", negated: Int(r))
            }
            switch intake(buffer, Int(r), buffers, capacity: capacity, lengths: lengths, at: n, count: count) {
            case .took(let k): n += k; ring.consume()
            case .dropped: ring.consume()
            case .full: return n   // stays first in the ring's ready list for the next call
            }
        }
        return n
    }

    private func readPlain(_ buffers: UnsafePointer<UnsafeMutableRawPointer>, capacity: Int,
                           lengths: UnsafeMutablePointer<UInt32>, count: Int, timeoutMs: Int32) throws -> Int {
        var n = 0
        while n < count {
            let r = vf_read_packet(fd, buffers[n], capacity)
            if r >= 0 {
                lengths[n] = UInt32(r)
                n += 1
                continue
            }
            if r == -Int(EMSGSIZE) {
                // Longer than a slot holds (the interface MTU was raised past the configured one): never send a
                // cut packet.
                counters?.add(.txDropBadInner)
                continue
            }
            if r == -Int(EAGAIN) {
                if n > 0 { return n }
                let p = vf_poll2(fd, wakeFD, timeoutMs)
                if p < 0 { throw SystemError("poll TUN", negated: Int(p)) }
                if p & 2 != 0 { _ = vf_eventfd_drain(wakeFD); return 0 }
                if p == 0 { return 0 }
                continue
            }
            if n > 0 { return n }
            throw SystemError("read TUN", negated: r)
        }
        return n
    }

    public func write(_ buffers: UnsafePointer<UnsafeMutableRawPointer>, lengths: UnsafePointer<UInt32>,
                      count: Int) -> Int {
        writePackets(buffers, lengths: lengths, count: count, ring: ring)
    }

    /// Without the ring (its single issuer is the tun-writer): the udp-reader's writes, under the delivery lock.
    public func writeDirect(_ buffers: UnsafePointer<UnsafeMutableRawPointer>, lengths: UnsafePointer<UInt32>,
                            count: Int) -> Int {
        writePackets(buffers, lengths: lengths, count: count, ring: nil)
    }

    private func writePackets(_ buffers: UnsafePointer<UnsafeMutableRawPointer>, lengths: UnsafePointer<UInt32>,
                              count: Int, ring: TunRing?) -> Int {
        if !vnet {
            if let ring { return writePlainRing(ring, buffers, lengths: lengths, count: count) }
            var written = 0
            for i in 0..<count where writeRetrying(buffers[i], Int(lengths[i])) { written += 1 }
            return written
        }
        writes.removeAll(keepingCapacity: true)
        slices.removeAll(keepingCapacity: true)
        coalescer.plan(packets: buffers, lengths: lengths, count: count, writes: &writes, slices: &slices)
        if let ring { return writeRing(ring) }
        var written = 0
        for w in writes {
            w.vnet.write(to: vnetOut)
            iov[0] = iovec(iov_base: vnetOut, iov_len: VirtioNetHeader.size)
            let k = min(w.sliceCount, iovCapacity - 1)
            for j in 0..<k {
                let s = slices[w.sliceStart + j]
                iov[1 + j] = iovec(iov_base: s.base, iov_len: s.length)
            }
            var r = vf_writev(fd, iov, Int32(1 + k))
            if r == -Int(EAGAIN) {
                _ = vf_poll2(-1, -1, 1)
                r = vf_writev(fd, iov, Int32(1 + k))
            }
            if r >= 0 { written += w.sliceCount }
        }
        return written
    }

    private func writeRetrying(_ p: UnsafeMutableRawPointer, _ length: Int) -> Bool {
        var r = vf_write(fd, p, length)
        if r == -Int(EAGAIN) {
            _ = vf_poll2(-1, -1, 1)
            r = vf_write(fd, p, length)
        }
        return r >= 0
    }

    /// --io uring: every planned write as one WRITEV, submitted together (in chunks if the batch is large).
    private func writeRing(_ ring: TunRing) -> Int {
        var written = 0
        var w = 0
        while w < writes.count {
            var queued = 0
            var used = 0
            while w < writes.count && queued < ring.writeCapacity {
                let write = writes[w]
                let k = min(write.sliceCount, iovCapacity - 1)
                if used + 1 + k > ring.iovCapacity { break }
                let header = ring.headers + queued * VirtioNetHeader.size
                write.vnet.write(to: header)
                ring.first[queued] = UInt32(used)
                ring.iovCount[queued] = UInt32(1 + k)
                ring.iov[used] = iovec(iov_base: header, iov_len: VirtioNetHeader.size)
                for j in 0..<k {
                    let s = slices[write.sliceStart + j]
                    ring.iov[used + 1 + j] = iovec(iov_base: s.base, iov_len: s.length)
                }
                used += 1 + k
                queued += 1
                w += 1
            }
            written += finishRingWrites(ring, queued) { writes[w - queued + $0].sliceCount }
        }
        return written
    }

    /// --io uring without offloads: one WRITEV of one plain packet each.
    private func writePlainRing(_ ring: TunRing, _ buffers: UnsafePointer<UnsafeMutableRawPointer>,
                                lengths: UnsafePointer<UInt32>, count: Int) -> Int {
        var written = 0
        var i = 0
        while i < count {
            let queued = min(count - i, ring.writeCapacity)
            for q in 0..<queued {
                ring.first[q] = UInt32(q)
                ring.iovCount[q] = 1
                ring.iov[q] = iovec(iov_base: buffers[i + q], iov_len: Int(lengths[i + q]))
            }
            written += finishRingWrites(ring, queued) { _ in 1 }
            i += queued
        }
        return written
    }

    /// Submits `queued` laid-out writes and counts the packets of those that went through. A write the TUN
    /// refuses for want of room (EAGAIN) is tried once more with writev after a millisecond, as without the ring;
    /// if the ring itself fails, the writes are made with writev.
    private func finishRingWrites(_ ring: TunRing, _ queued: Int, packets: (Int) -> Int) -> Int {
        if queued == 0 { return 0 }
        let rc = ring.submitWrites(queued)
        var written = 0
        var paused = false
        for q in 0..<queued {
            var r = rc < 0 ? -Int(EAGAIN) : Int(ring.results[q])
            if r == -Int(EAGAIN) {
                if !paused { _ = vf_poll2(-1, -1, 1); paused = true }
                r = vf_writev(fd, ring.iov + Int(ring.first[q]), Int32(ring.iovCount[q]))
            }
            if r >= 0 { written += packets(q) }
        }
        return written
    }

    public func wake() { _ = vf_eventfd_signal(wakeFD) }

    public func close() {
        ring = nil
        _ = vf_close(fd)
        _ = vf_close(wakeFD)
    }
}
