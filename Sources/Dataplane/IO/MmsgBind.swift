// The UDP socket through recvmmsg/sendmmsg: one syscall per batch in each direction, with UDP GRO on receive and
// UDP GSO (UDP_SEGMENT) on send where the kernel supports them.
import CShims
import Glibc

public final class MmsgBind: UDPBind, @unchecked Sendable {  // receive state is used by the one receiving thread, send state under sendLock
    public let batchSize: Int
    public let port: UInt16
    /// Whether received messages may carry several datagrams (UDP_GRO accepted by the kernel).
    public let groEnabled: Bool
    /// Whether sends are segmented (UDP_SEGMENT); cleared for good if the kernel answers EIO.
    public private(set) var gsoEnabled: Bool
    /// Largest message a receive buffer must hold: a full GRO train.
    public static let maxMessageSize = 65536
    /// Receive buffer size asked of the caller without GRO: one datagram of a tunnel MTU up to about 2000 (the
    /// caller's buffers may be larger; receives use whatever capacity it passes).
    public static let maxDatagramSize = 2048
    /// UDP_SEGMENT limit used (the kernel's UDP_MAX_SEGMENTS has been 64 for years; newer ones allow 128).
    public static let maxSegments: UInt32 = 64
    private let socket: UDPSocket
    private var fd: Int32 { socket.fd }
    private var family: Int32 { socket.family }
    private var wakeFD: Int32 { socket.wakeFD }
    private let recvState: OpaquePointer
    private let sendState: OpaquePointer
    private let sendLock = ConditionLock()
    private let messages: ReceivedMessages
    private let onGSODisabled: (@Sendable () -> Void)?
    /// The last receive took as many messages as it asked for (receive state).
    public private(set) var lastReceiveFilled = false

    /// `batchSize`: messages per receive call (each needs a `maxMessageSize` buffer when GRO is on) and the most
    /// datagrams per send call.
    public init(port requested: UInt16, batchSize: Int = PacketBatch.capacity, bufferBytes: Int32 = 16 << 20,
                offloads: Bool = true, onGSODisabled: (@Sendable () -> Void)? = nil) throws {
        let socket = try UDPSocket(port: requested, bufferBytes: bufferBytes)
        guard let r = vf_mmsg_create(UInt32(batchSize), socket.family),
              let s = vf_mmsg_create(UInt32(batchSize), socket.family) else {
            socket.close()
            throw SystemError("allocate mmsg state", ENOMEM)
        }
        let fd = socket.fd
        self.socket = socket
        self.recvState = r
        self.sendState = s
        self.batchSize = batchSize
        self.port = socket.port
        self.onGSODisabled = onGSODisabled
        groEnabled = offloads && vf_udp_enable_gro(fd) == 0
        gsoEnabled = offloads && vf_udp_probe_gso(fd) == 1
        messages = ReceivedMessages(capacity: batchSize)
    }

    public var receiveBufferSize: Int { groEnabled ? MmsgBind.maxMessageSize : MmsgBind.maxDatagramSize }
    public var datagramsPerMessage: Int { groEnabled ? Int(MmsgBind.maxSegments) : 1 }

    /// True when the socket is dual-stack (IPv6 with v4-mapped IPv4).
    public var isDualStack: Bool { socket.isDualStack }

    public func receive(buffers: UnsafePointer<UnsafeMutableRawPointer>, bufferCount: Int, capacity: Int,
                        packets: UnsafeMutablePointer<UnsafeMutableRawPointer>, lengths: UnsafeMutablePointer<UInt32>,
                        endpoints: UnsafeMutablePointer<Endpoint>, tos: UnsafeMutablePointer<UInt8>,
                        timestamps: UnsafeMutablePointer<UInt64>, maxPackets: Int, truncated: inout Int,
                        timeoutMs: Int32) throws -> Int {
        let count = ReceivedMessages.count(bufferCount: bufferCount, batchSize: batchSize, maxPackets: maxPackets,
                                           perMessage: datagramsPerMessage)
        messages.prepare(count: count, capacity: capacity)
        var n: Int32 = 0
        while true {
            n = buffers.withMemoryRebound(to: Optional<UnsafeMutableRawPointer>.self, capacity: count) { bufs in
                messages.endpoints.withMemoryRebound(to: vf_endpoint.self, capacity: count) { eps in
                    vf_mmsg_recv(recvState, fd, bufs, messages.caps, messages.lengths, eps, messages.truncated,
                                 messages.segments, messages.tos, messages.stamps, UInt32(count))
                }
            }
            if n > 0 { lastReceiveFilled = Int(n) == count; break }
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
        return messages.split(Int(n), buffers: buffers, packets: packets, lengths: lengths, endpoints: endpoints,
                              tos: tos, timestamps: timestamps,
                              maxPackets: maxPackets, truncated: &truncated)
    }

    public func send(_ buffers: UnsafePointer<UnsafeMutableRawPointer>, lengths: UnsafePointer<UInt32>,
                     endpoints: UnsafePointer<Endpoint>, tos: UnsafePointer<UInt8>?, count: Int) throws -> Int {
        var done = 0
        var sent = 0
        var lastError: Int32 = 0
        var disabled = false
        sendLock.withLock {
            var gso: Int32 = gsoEnabled ? 1 : 0
            while done < count {
                let n = (buffers + done).withMemoryRebound(to: Optional<UnsafeMutableRawPointer>.self,
                                                           capacity: count - done) { bufs in
                    (endpoints + done).withMemoryRebound(to: vf_endpoint.self, capacity: count - done) { eps in
                        vf_mmsg_send(sendState, fd, bufs, lengths + done, eps, tos.map { $0 + done }, UInt32(count - done), &gso,
                                     MmsgBind.maxSegments)
                    }
                }
                if gso == 0 && gsoEnabled { gsoEnabled = false; disabled = true }
                if n > 0 { done += Int(n); sent += Int(n); continue }
                if n == -EAGAIN || n == -ENOBUFS {
                    _ = vf_poll2(-1, -1, 1)
                    continue
                }
                // The kernel refused the first message (unreachable, too big): skip one datagram, keep the rest.
                lastError = -n
                done += 1
            }
        }
        if disabled { onGSODisabled?() }
        if sent == 0 && lastError != 0 { throw SystemError("sendmmsg", lastError) }
        return sent
    }

    public func send(_ bytes: [UInt8], to endpoint: Endpoint, tos: UInt8) throws {
        try socket.send(bytes, to: endpoint, tos: tos)
    }

    public func leaseFlowLabels(count: Int, destination: IPAddress) -> (labels: [UInt32], error: String?) {
        socket.leaseFlowLabels(count: count, destination: destination)
    }

    public func wake() { socket.wake() }

    public func close() {
        socket.close()
        vf_mmsg_destroy(recvState)
        vf_mmsg_destroy(sendState)
        messages.deallocate()
    }
}
