// The two small OS interfaces the pipeline talks to. Linux implementations are in LinuxTun.swift and
// MmsgBind.swift; tests use the channel-backed pair in TestSupport. Batch sizes are fixed at creation.

/// A layer-3 tunnel device: whole IP packets in, whole IP packets out.
public protocol TunInterface: AnyObject, Sendable {
    var name: String { get }
    var batchSize: Int { get }
    /// Reads up to `count` packets; packet i lands at `buffers[i]` (at most `capacity` bytes) and its length in
    /// `lengths[i]`. Waits up to `timeoutMs` for the first packet (-1: until woken). Returns how many were
    /// read: 0 on timeout or `wake()`.
    func read(_ buffers: UnsafePointer<UnsafeMutableRawPointer>, capacity: Int,
              lengths: UnsafeMutablePointer<UInt32>, count: Int, timeoutMs: Int32) throws -> Int
    /// Writes `count` packets. Returns how many were written; a packet the kernel refuses is skipped, not retried.
    func write(_ buffers: UnsafePointer<UnsafeMutableRawPointer>, lengths: UnsafePointer<UInt32>, count: Int) -> Int
    /// As `write`, but callable from a thread other than the usual writer: never through state tied to the
    /// writing thread (an io_uring ring has a single issuer). Calls to `write` and `writeDirect` come from two
    /// threads but never overlap (the device serializes them with its delivery lock).
    func writeDirect(_ buffers: UnsafePointer<UnsafeMutableRawPointer>, lengths: UnsafePointer<UInt32>,
                     count: Int) -> Int
    func wake()
    func close()
}

extension TunInterface {
    public func writeDirect(_ buffers: UnsafePointer<UnsafeMutableRawPointer>, lengths: UnsafePointer<UInt32>,
                            count: Int) -> Int {
        write(buffers, lengths: lengths, count: count)
    }
}

/// A UDP socket for all peers.
public protocol UDPBind: AnyObject, Sendable {
    /// Messages per receive call (and datagrams per send call).
    var batchSize: Int { get }
    var port: UInt16 { get }
    /// How large a receive buffer must be, and how many datagrams one received message may carry (UDP GRO).
    var receiveBufferSize: Int { get }
    var datagramsPerMessage: Int { get }
    /// Receives up to `bufferCount` messages into `buffers` (each `capacity` bytes). A message may carry several
    /// datagrams (UDP GRO); they come back split: datagram k starts at `packets[k]`, is `lengths[k]` bytes long,
    /// came from `endpoints[k]` with outer TOS / traffic class `tos[k]`, and was stamped by the kernel at
    /// `timestamps[k]` (CLOCK_REALTIME ns; 0 if unknown; one stamp for all datagrams of a GRO message).
    /// At most `maxPackets` datagrams. Messages that did not fit their buffer, and datagrams past `maxPackets`
    /// (a message with more GRO segments than `datagramsPerMessage`), are dropped and added to `truncated`.
    /// Waits up to `timeoutMs` for the first; returns 0 on timeout or `wake()`.
    func receive(buffers: UnsafePointer<UnsafeMutableRawPointer>, bufferCount: Int, capacity: Int,
                 packets: UnsafeMutablePointer<UnsafeMutableRawPointer>, lengths: UnsafeMutablePointer<UInt32>,
                 endpoints: UnsafeMutablePointer<Endpoint>, tos: UnsafeMutablePointer<UInt8>,
                 timestamps: UnsafeMutablePointer<UInt64>, maxPackets: Int, truncated: inout Int,
                 timeoutMs: Int32) throws -> Int
    /// Whether the last `receive` took every message it asked for, so the socket probably holds more (receive
    /// CoDel's "more than one MTU queued" test). Read by the receiving thread only.
    var lastReceiveFilled: Bool { get }
    /// Sends `count` datagrams, datagram i with outer TOS `tos[i]` (nil: 0). Consecutive ones to the same
    /// endpoint with the same TOS may leave as one segmented send. Returns how many were sent.
    func send(_ buffers: UnsafePointer<UnsafeMutableRawPointer>, lengths: UnsafePointer<UInt32>,
              endpoints: UnsafePointer<Endpoint>, tos: UnsafePointer<UInt8>?, count: Int) throws -> Int
    /// One datagram (handshakes, cookies, keepalives from the control thread) with an outer TOS.
    func send(_ bytes: [UInt8], to endpoint: Endpoint, tos: UInt8) throws
    /// --flowlabel: leases up to `count` outer IPv6 flow labels (non-zero, host order) for sends to IPv6
    /// endpoints, which then carry a label in `Endpoint.raw.sin6_flowinfo`. Returns the labels (possibly fewer or
    /// none) and why not all were leased.
    func leaseFlowLabels(count: Int, destination: IPAddress) -> (labels: [UInt32], error: String?)
    func wake()
    func close()
}

extension UDPBind {
    /// Sockets without flow label support (the in-memory test networks).
    public func leaseFlowLabels(count: Int, destination: IPAddress) -> (labels: [UInt32], error: String?) {
        ([], "this socket cannot set flow labels")
    }
    /// Test doubles that do not track it: the socket is taken to be empty after each receive.
    public var lastReceiveFilled: Bool { false }

    /// One datagram with TOS 0.
    public func send(_ bytes: [UInt8], to endpoint: Endpoint) throws { try send(bytes, to: endpoint, tos: 0) }

    /// `count` datagrams with TOS 0.
    public func send(_ buffers: UnsafePointer<UnsafeMutableRawPointer>, lengths: UnsafePointer<UInt32>,
                     endpoints: UnsafePointer<Endpoint>, count: Int) throws -> Int {
        try send(buffers, lengths: lengths, endpoints: endpoints, tos: nil, count: count)
    }
}
