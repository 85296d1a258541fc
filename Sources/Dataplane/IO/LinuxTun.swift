// The kernel TUN device with IFF_VNET_HDR and offloads: reads hand us super-packets (TSO/USO) that are split here
// into MTU-sized packets; writes coalesce TCP (and UDP, with USO) segments of a flow back into super-packets.
// Without offloads (`offloads: false`, or a kernel that refuses them) every read and write is one plain packet.
import CShims
import Glibc

public final class LinuxTun: TunInterface, @unchecked Sendable {  // fds are fixed after init; read state belongs to the reading thread, write state to the writing thread
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

    public init(name requested: String, batchSize: Int = PacketBatch.capacity, offloads: Bool = true,
                counters: Counters? = nil) throws {
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
    }

    /// TCP segmentation offload is on: reads may be super-packets.
    public var segmentationOffload: Bool {
        offloadFlags & UInt32(VF_TUN_F_TSO4 | VF_TUN_F_TSO6) != 0
    }

    public func read(_ buffers: UnsafePointer<UnsafeMutableRawPointer>, capacity: Int,
                     lengths: UnsafeMutablePointer<UInt32>, count: Int, timeoutMs: Int32) throws -> Int {
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
                guard r > VirtioNetHeader.size else {
                    counters?.add(.txDropBadOffload)
                    continue
                }
            }
            let header = VirtioNetHeader(reading: scratch)
            let result = GSOSplit.split(header: header, packet: scratch + VirtioNetHeader.size,
                                        length: r - VirtioNetHeader.size, outputs: buffers + n, capacity: capacity,
                                        outLengths: lengths + n, maxSegments: count - n)
            switch result {
            case .success(let segments):
                n += segments
            case .failure(.tooManySegments) where n > 0:
                // Not enough room left in this batch: keep the super-packet for the next call.
                pendingLength = r
                return n
            case .failure:
                counters?.add(.txDropBadOffload)
            }
        }
        return n
    }

    private func readPlain(_ buffers: UnsafePointer<UnsafeMutableRawPointer>, capacity: Int,
                           lengths: UnsafeMutablePointer<UInt32>, count: Int, timeoutMs: Int32) throws -> Int {
        var n = 0
        while n < count {
            let r = vf_read(fd, buffers[n], capacity)
            if r >= 0 {
                lengths[n] = UInt32(r)
                n += 1
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
        if !vnet {
            var written = 0
            for i in 0..<count where writeRetrying(buffers[i], Int(lengths[i])) { written += 1 }
            return written
        }
        writes.removeAll(keepingCapacity: true)
        slices.removeAll(keepingCapacity: true)
        coalescer.plan(packets: buffers, lengths: lengths, count: count, writes: &writes, slices: &slices)
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

    public func wake() { _ = vf_eventfd_signal(wakeFD) }

    public func close() {
        _ = vf_close(fd)
        _ = vf_close(wakeFD)
    }
}
