// The UDP socket through io_uring (uring.c): receive with a multishot recvmsg over provided buffers, send with one
// SENDMSG per UDP GSO group, all of a batch in one submission. Same socket, offloads and behaviour as MmsgBind;
// use it where `UringBind.probe()` says the kernel allows it.
import CShims
import Glibc

public final class UringBind: UDPBind, @unchecked Sendable {  // the receive ring is used by one receiving thread at a time, the send ring under sendLock
    public let batchSize: Int
    public let port: UInt16
    /// Whether received messages may carry several datagrams (UDP_GRO accepted by the kernel).
    public let groEnabled: Bool
    /// Whether sends are segmented (UDP_SEGMENT); cleared for good if the kernel answers EIO.
    public private(set) var gsoEnabled: Bool
    /// Largest message a receive buffer must hold with GRO on: a full GRO train.
    public static let maxMessageSize = MmsgBind.maxMessageSize
    /// Default for the largest datagram received without GRO (`maxDatagram`); larger ones are truncated (dropped
    /// and counted).
    public static let maxDatagramSize = MmsgBind.maxDatagramSize
    public static let maxSegments = MmsgBind.maxSegments
    /// True when the socket is dual-stack (IPv6 with v4-mapped IPv4).
    public var isDualStack: Bool { socket.isDualStack }
    private let socket: UDPSocket
    private var fd: Int32 { socket.fd }
    private var family: Int32 { socket.family }
    private var wakeFD: Int32 { socket.wakeFD }
    private let rx: OpaquePointer
    private let tx: OpaquePointer
    private let sendLock = ConditionLock()
    private let messages: ReceivedMessages
    private let onGSODisabled: (@Sendable () -> Void)?
    /// Largest datagram a receive buffer holds without GRO.
    private let maxDatagram: Int
    /// The last receive took as many messages as it asked for (receive state).
    public private(set) var lastReceiveFilled = false

    /// Whether this process may use io_uring and the kernel has what UringBind needs, with a line for the log
    /// saying why not (or which setup it will get).
    public static func probe() -> (available: Bool, reason: String) {
        var reason = [CChar](repeating: 0, count: 256)
        let ok = vf_uring_probe(&reason, reason.count)
        let text = reason.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return (ok == 1, text)
    }

    /// `batchSize`: messages per receive call and the most datagrams per send call. `receiveBuffers`: provided
    /// buffers the kernel may fill before the receiver takes them (a power of two; each `receiveBufferSize`
    /// bytes); 0 picks 64 with GRO (4 MiB) and 4 × batchSize without. `maxDatagram`: the largest datagram
    /// received whole without GRO (at least the default 2048; a tunnel MTU above ~2000 needs more).
    public init(port requested: UInt16, batchSize: Int = PacketBatch.capacity, bufferBytes: Int32 = 16 << 20,
                offloads: Bool = true, receiveBuffers: Int = 0, maxDatagram: Int = UringBind.maxDatagramSize,
                onGSODisabled: (@Sendable () -> Void)? = nil) throws {
        let socket = try UDPSocket(port: requested, bufferBytes: bufferBytes)
        let (fd, fam, wake) = (socket.fd, socket.family, socket.wakeFD)
        let gro = offloads && vf_udp_enable_gro(fd) == 0
        let datagram = min(UringBind.maxMessageSize, max(UringBind.maxDatagramSize, maxDatagram))
        let payload = gro ? UringBind.maxMessageSize : datagram
        var buffers = receiveBuffers > 0 ? receiveBuffers : (gro ? 64 : 4 * batchSize)
        buffers = 1 << (Int.bitWidth - (max(buffers, 2) - 1).leadingZeroBitCount)  // round up to a power of two
        var err: Int32 = 0
        guard let r = vf_uring_rx_create(fd, fam, wake, UInt32(min(buffers, 32768)), UInt32(payload), &err) else {
            socket.close()
            throw SystemError("io_uring receive ring", negated: Int(err))
        }
        guard let s = vf_uring_tx_create(fd, fam, UInt32(batchSize), &err) else {
            vf_uring_rx_destroy(r)
            socket.close()
            throw SystemError("io_uring send ring", negated: Int(err))
        }
        self.socket = socket
        self.rx = r
        self.tx = s
        self.batchSize = batchSize
        self.maxDatagram = datagram
        self.port = socket.port
        self.onGSODisabled = onGSODisabled
        groEnabled = gro
        gsoEnabled = offloads && vf_udp_probe_gso(fd) == 1
        messages = ReceivedMessages(capacity: batchSize)
    }

    public var receiveBufferSize: Int { groEnabled ? UringBind.maxMessageSize : maxDatagram }
    public var datagramsPerMessage: Int { groEnabled ? Int(UringBind.maxSegments) : 1 }

    public func receive(buffers: UnsafePointer<UnsafeMutableRawPointer>, bufferCount: Int, capacity: Int,
                        packets: UnsafeMutablePointer<UnsafeMutableRawPointer>, lengths: UnsafeMutablePointer<UInt32>,
                        endpoints: UnsafeMutablePointer<Endpoint>, tos: UnsafeMutablePointer<UInt8>,
                        timestamps: UnsafeMutablePointer<UInt64>, maxPackets: Int, truncated: inout Int,
                        timeoutMs: Int32) throws -> Int {
        let count = ReceivedMessages.count(bufferCount: bufferCount, batchSize: batchSize, maxPackets: maxPackets,
                                           perMessage: datagramsPerMessage)
        messages.prepare(count: count, capacity: capacity)
        let n = buffers.withMemoryRebound(to: Optional<UnsafeMutableRawPointer>.self, capacity: count) { bufs in
            messages.endpoints.withMemoryRebound(to: vf_endpoint.self, capacity: count) { eps in
                vf_uring_rx_recv(rx, bufs, messages.caps, messages.lengths, eps, messages.truncated,
                                 messages.segments, messages.tos, messages.stamps, UInt32(count), timeoutMs)
            }
        }
        if n < 0 { throw SystemError("io_uring recvmsg", negated: Int(n)) }
        lastReceiveFilled = Int(n) == count
        return messages.split(Int(n), buffers: buffers, packets: packets, lengths: lengths, endpoints: endpoints,
                              tos: tos, timestamps: timestamps,
                              maxPackets: maxPackets, truncated: &truncated)
    }

    public func send(_ buffers: UnsafePointer<UnsafeMutableRawPointer>, lengths: UnsafePointer<UInt32>,
                     endpoints: UnsafePointer<Endpoint>, tos: UnsafePointer<UInt8>?, count: Int) throws -> Int {
        var sent = 0
        var lastError: Int32 = 0
        var failure: Int32 = 0
        var disabled = false
        sendLock.withLock {
            var gso: Int32 = gsoEnabled ? 1 : 0
            var done = 0
            while done < count {
                let chunk = min(count - done, batchSize)
                var refused: Int32 = 0
                let n = (buffers + done).withMemoryRebound(to: Optional<UnsafeMutableRawPointer>.self,
                                                           capacity: chunk) { bufs in
                    (endpoints + done).withMemoryRebound(to: vf_endpoint.self, capacity: chunk) { eps in
                        vf_uring_tx_send(tx, bufs, lengths + done, eps, tos.map { $0 + done }, UInt32(chunk), &gso, UringBind.maxSegments,
                                         &refused)
                    }
                }
                if gso == 0 && gsoEnabled { gsoEnabled = false; disabled = true }
                if refused != 0 { lastError = refused }
                if n < 0 { failure = -n; break }
                sent += Int(n)
                done += chunk
            }
        }
        if disabled { onGSODisabled?() }
        if failure != 0 && sent == 0 { throw SystemError("io_uring sendmsg", failure) }
        if sent == 0 && lastError != 0 { throw SystemError("sendmsg", lastError) }
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
        // The rings hold the socket as a registered file; they go first.
        vf_uring_rx_destroy(rx)
        vf_uring_tx_destroy(tx)
        socket.close()
        messages.deallocate()
    }
}
