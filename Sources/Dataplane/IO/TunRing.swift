// The io_uring side of LinuxTun (`--io uring`): the TUN's reads and writes through two rings (tun_uring.c), one
// owned by the reading thread, one by the writing thread, so a batch of packets costs a few io_uring_enter calls
// instead of a read(2) or writev(2) each.
//
// Reads: up to `slots` reads stay armed; each completion is a packet (or super-packet) in its own slot buffer,
// which LinuxTun splits or copies into the caller's batch and then releases. Completions taken from the ring but
// not yet used (the batch filled up) wait in `ready`, in order, for the next call.
// Writes: LinuxTun lays out the iovecs of every write of a batch (virtio header + slices) in `iov`, then one call
// submits them all and waits for their results.
import CShims
import Glibc

final class TunRing: @unchecked Sendable {  // the read half belongs to the reading thread, the write half to the writing thread
    /// Reads kept armed. Each slot holds a whole super-packet (64 KiB + virtio header).
    static let slots = 32
    static let slotBytes = VirtioNetHeader.size + 65536

    private let rx: OpaquePointer
    private let tx: OpaquePointer

    // Read half.
    private let readySlots: UnsafeMutablePointer<UInt32>
    private let readyResults: UnsafeMutablePointer<Int32>
    private var readyStart = 0
    private var readyEnd = 0

    // Write half.
    let writeCapacity: Int
    let iov: UnsafeMutablePointer<iovec>
    let iovCapacity: Int
    let first: UnsafeMutablePointer<UInt32>
    let iovCount: UnsafeMutablePointer<UInt32>
    let results: UnsafeMutablePointer<Int32>
    /// One virtio header per write (all of a batch's writes are in flight at once).
    let headers: UnsafeMutableRawPointer

    /// Whether io_uring can read `fd` (an idle TUN that is not up yet) without blocking a kernel worker.
    static func probe(fd: Int32) -> (ok: Bool, reason: String) {
        var buf = [CChar](repeating: 0, count: 256)
        let ok = vf_tun_uring_probe(fd, &buf, buf.count) == 1
        return (ok, String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    /// `writeCapacity`: writes per submission; the iovec array holds twice that (a header and a slice each on
    /// average; a submission ends early when it is full).
    init(fd: Int32, wakeFD: Int32, writeCapacity: Int) throws {
        var err: Int32 = 0
        guard let rx = vf_tun_rx_create(fd, wakeFD, UInt32(TunRing.slots), UInt32(TunRing.slotBytes), &err) else {
            throw SystemError("io_uring TUN reads", negated: Int(err))
        }
        guard let tx = vf_tun_tx_create(fd, UInt32(min(writeCapacity, 256)), &err) else {
            vf_tun_rx_destroy(rx)
            throw SystemError("io_uring TUN writes", negated: Int(err))
        }
        self.rx = rx
        self.tx = tx
        readySlots = .allocate(capacity: TunRing.slots)
        readyResults = .allocate(capacity: TunRing.slots)
        self.writeCapacity = writeCapacity
        iovCapacity = 2 * writeCapacity
        iov = .allocate(capacity: iovCapacity)
        iov.initialize(repeating: iovec(), count: iovCapacity)
        first = .allocate(capacity: writeCapacity)
        iovCount = .allocate(capacity: writeCapacity)
        results = .allocate(capacity: writeCapacity)
        headers = .allocate(byteCount: writeCapacity * VirtioNetHeader.size, alignment: 8)
    }

    deinit {
        vf_tun_rx_destroy(rx)
        vf_tun_tx_destroy(tx)
        readySlots.deallocate(); readyResults.deallocate()
        iov.deallocate(); first.deallocate(); iovCount.deallocate(); results.deallocate(); headers.deallocate()
    }

    // MARK: read half

    /// The oldest packet read and not yet used: its slot, buffer and length (or -errno). Takes new completions
    /// from the ring when none is left, waiting up to `timeoutMs` (0: not at all). nil: nothing arrived (or a
    /// wake-up). Throws if the ring itself failed.
    func next(timeoutMs: Int32) throws -> (slot: UInt32, buffer: UnsafeMutableRawPointer, result: Int32)? {
        if readyStart == readyEnd {
            let n = vf_tun_rx_wait(rx, timeoutMs, readySlots, readyResults, UInt32(TunRing.slots))
            if n < 0 { throw SystemError("io_uring TUN read", negated: Int(n)) }
            readyStart = 0
            readyEnd = Int(n)
            if n == 0 { return nil }
        }
        let slot = readySlots[readyStart]
        return (slot, vf_tun_rx_buffer(rx, slot)!, readyResults[readyStart])
    }

    /// The packet `next` returned is used up: its slot is read into again.
    func consume() {
        vf_tun_rx_release(rx, readySlots[readyStart])
        readyStart += 1
    }

    // MARK: write half

    /// Submits writes 0..<count laid out in `iov`/`first`/`iovCount`; their results land in `results`.
    func submitWrites(_ count: Int) -> Int32 {
        vf_tun_tx_writev(tx, iov, first, iovCount, UInt32(count), results)
    }
}
