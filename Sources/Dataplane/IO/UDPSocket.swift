// What both UDP backends (MmsgBind, UringBind) own and do the same way: the dual-stack socket, the eventfd that
// wakes a blocked receive, the one-datagram send of the control path, and closing.
import CShims
import Glibc

struct UDPSocket {
    let fd: Int32
    let family: Int32
    let wakeFD: Int32
    let port: UInt16

    /// Opens and binds the socket (see vf_udp_open) and the wake-up eventfd; nothing is left open on failure.
    init(port requested: UInt16, bufferBytes: Int32) throws {
        var bound: UInt16 = 0
        var fam: Int32 = 0
        let fd = vf_udp_open(requested, bufferBytes, &bound, &fam)
        if fd < 0 { throw SystemError("bind UDP port \(requested)", negated: Int(fd)) }
        let wake = vf_eventfd()
        if wake < 0 {
            _ = vf_close(fd)
            throw SystemError("eventfd", negated: Int(wake))
        }
        self.fd = fd
        self.family = fam
        self.wakeFD = wake
        self.port = bound
    }

    /// True when the socket is dual-stack (IPv6 with v4-mapped IPv4).
    var isDualStack: Bool { family == AF_INET6 }

    /// One datagram with an outer TOS (handshakes, cookies, keepalives).
    func send(_ bytes: [UInt8], to endpoint: Endpoint, tos: UInt8) throws {
        var ep = endpoint.raw
        let n = bytes.withUnsafeBytes { vf_udp_sendto(fd, family, $0.baseAddress, $0.count, &ep, tos) }
        if n < 0 { throw SystemError("sendto \(endpoint)", negated: n) }
    }

    /// --flowlabel: leases up to `count` outer IPv6 flow labels (see vf_udp_lease_flowlabels).
    func leaseFlowLabels(count: Int, destination: IPAddress) -> (labels: [UInt32], error: String?) {
        guard family == AF_INET6 else { return ([], "the UDP socket is IPv4-only") }
        guard case .v6 = destination else { return ([], "no IPv6 destination to lease labels for") }
        var dst = [UInt8](repeating: 0, count: 16)
        dst.withUnsafeMutableBytes { destination.write(to: $0.baseAddress!) }
        var labels = [UInt32](repeating: 0, count: count)
        var err: Int32 = 0
        let n = Int(vf_udp_lease_flowlabels(fd, dst, &labels, UInt32(count), &err))
        labels.removeLast(count - n)
        return (labels, n < count && err != 0 ? "\(SystemError("IPV6_FLOWLABEL_MGR", err))" : nil)
    }

    func wake() { _ = vf_eventfd_signal(wakeFD) }

    func close() {
        _ = vf_close(fd)
        _ = vf_close(wakeFD)
    }
}
