// The UDP socket through recvmmsg/sendmmsg: one syscall per batch in each direction.
import CShims
import Glibc

public final class MmsgBind: UDPBind, @unchecked Sendable {  // receive state is used by the one receiving thread, send state under sendLock
    public let batchSize: Int
    public let port: UInt16
    private let fd: Int32
    private let family: Int32
    private let wakeFD: Int32
    private let recvState: OpaquePointer
    private let sendState: OpaquePointer
    private let sendLock = ConditionLock()
    private let caps: UnsafeMutablePointer<UInt32>

    public init(port requested: UInt16, batchSize: Int = PacketBatch.capacity, bufferBytes: Int32 = 4 << 20) throws {
        var bound: UInt16 = 0
        var fam: Int32 = 0
        let fd = vf_udp_open(requested, bufferBytes, &bound, &fam)
        if fd < 0 { throw SystemError("bind UDP port \(requested)", negated: Int(fd)) }
        let wake = vf_eventfd()
        guard wake >= 0, let r = vf_mmsg_create(UInt32(batchSize), fam),
              let s = vf_mmsg_create(UInt32(batchSize), fam) else {
            _ = vf_close(fd)
            throw SystemError("allocate mmsg state", ENOMEM)
        }
        self.fd = fd
        self.family = fam
        self.wakeFD = wake
        self.recvState = r
        self.sendState = s
        self.batchSize = batchSize
        self.port = bound
        caps = .allocate(capacity: batchSize)
        caps.initialize(repeating: 0, count: batchSize)
    }

    /// True when the socket is dual-stack (IPv6 with v4-mapped IPv4).
    public var isDualStack: Bool { family == AF_INET6 }

    public func receive(_ buffers: UnsafePointer<UnsafeMutableRawPointer>, capacity: Int,
                        lengths: UnsafeMutablePointer<UInt32>, endpoints: UnsafeMutablePointer<Endpoint>,
                        truncated: UnsafeMutablePointer<UInt8>, count: Int, timeoutMs: Int32) throws -> Int {
        let count = min(count, batchSize)
        for i in 0..<count { caps[i] = UInt32(capacity) }
        do {
            while true {
                let n = buffers.withMemoryRebound(to: Optional<UnsafeMutableRawPointer>.self, capacity: count) { bufs in
                    endpoints.withMemoryRebound(to: vf_endpoint.self, capacity: count) { eps in
                        vf_mmsg_recv(recvState, fd, bufs, caps, lengths, eps, truncated, UInt32(count))
                    }
                }
                if n > 0 { return Int(n) }
                if n == -EAGAIN {
                    let p = vf_poll2(fd, wakeFD, timeoutMs)
                    if p < 0 { throw SystemError("poll UDP", negated: Int(p)) }
                    if p & 2 != 0 { _ = vf_eventfd_drain(wakeFD); return 0 }
                    if p == 0 { return 0 }
                    continue
                }
                // ICMP errors (ECONNREFUSED etc.) surface here on a UDP socket; they are not fatal.
                if n == -ECONNREFUSED || n == -EHOSTUNREACH || n == -ENETUNREACH { continue }
                throw SystemError("recvmmsg", negated: Int(n))
            }
        }
    }

    public func send(_ buffers: UnsafePointer<UnsafeMutableRawPointer>, lengths: UnsafePointer<UInt32>,
                     endpoints: UnsafePointer<Endpoint>, count: Int) throws -> Int {
        var done = 0
        var sent = 0
        var lastError: Int32 = 0
        sendLock.withLock {
            while done < count {
                let n = (buffers + done).withMemoryRebound(to: Optional<UnsafeMutableRawPointer>.self,
                                                           capacity: count - done) { bufs in
                    (endpoints + done).withMemoryRebound(to: vf_endpoint.self, capacity: count - done) { eps in
                        vf_mmsg_send(sendState, fd, bufs, lengths + done, eps, UInt32(count - done))
                    }
                }
                if n > 0 { done += Int(n); sent += Int(n); continue }
                if n == -EAGAIN || n == -ENOBUFS {
                    _ = vf_poll2(-1, -1, 1)
                    continue
                }
                // The kernel refused the first datagram (unreachable, too big): skip it, keep the rest.
                lastError = -n
                done += 1
            }
        }
        if sent == 0 && lastError != 0 { throw SystemError("sendmmsg", lastError) }
        return sent
    }

    public func send(_ bytes: [UInt8], to endpoint: Endpoint) throws {
        var ep = endpoint.raw
        let n = bytes.withUnsafeBytes { vf_udp_sendto(fd, family, $0.baseAddress, $0.count, &ep) }
        if n < 0 { throw SystemError("sendto \(endpoint)", negated: n) }
    }

    public func wake() { _ = vf_eventfd_signal(wakeFD) }

    public func close() {
        _ = vf_close(fd)
        _ = vf_close(wakeFD)
        vf_mmsg_destroy(recvState)
        vf_mmsg_destroy(sendState)
        caps.deallocate()
    }
}
