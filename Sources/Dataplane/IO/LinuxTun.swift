// The kernel TUN device (IFF_TUN | IFF_NO_PI), read and written one packet per syscall, polled when empty.
import CShims
import Glibc

public final class LinuxTun: TunInterface, @unchecked Sendable {  // fds are fixed after init; reads come from one thread, writes from one other
    public let name: String
    public let batchSize: Int
    private let fd: Int32
    private let wakeFD: Int32

    public init(name requested: String, batchSize: Int = PacketBatch.capacity) throws {
        var out = [CChar](repeating: 0, count: 32)
        let fd = vf_tun_open(requested, &out, 0)
        if fd < 0 { throw SystemError("open TUN \(requested)", negated: Int(fd)) }
        let wake = vf_eventfd()
        if wake < 0 { _ = vf_close(fd); throw SystemError("eventfd", negated: Int(wake)) }
        self.fd = fd
        self.wakeFD = wake
        self.batchSize = batchSize
        self.name = String(decoding: out.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public func read(_ buffers: UnsafePointer<UnsafeMutableRawPointer>, capacity: Int,
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
        var written = 0
        for i in 0..<count {
            var r = vf_write(fd, buffers[i], Int(lengths[i]))
            if r == -Int(EAGAIN) {
                _ = vf_poll2(-1, -1, 1)
                r = vf_write(fd, buffers[i], Int(lengths[i]))
            }
            if r >= 0 { written += 1 }
        }
        return written
    }

    public func wake() { _ = vf_eventfd_signal(wakeFD) }

    public func close() {
        _ = vf_close(fd)
        _ = vf_close(wakeFD)
    }
}
