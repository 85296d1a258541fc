// `--flowlabel`: the outer IPv6 flow label of a transport packet comes from the hash of its inner flow, so routers
// that hash the flow label (ECMP, LAG, fq on the path) keep the tunnel's inner flows apart, as they would without
// the tunnel. Linux only sends labels the socket leased (see Sources/CShims/flowlabel.c), so the device leases a
// pool at start and maps each inner flow hash onto it: one inner flow always gets the same label, and distinct
// flows get distinct labels unless they collide in the pool. The label rides in the destination's
// sin6_flowinfo; IPv4 endpoints are left alone. Without --flowlabel (or if no label could be leased) the kernel
// picks the label itself (net.ipv6.auto_flowlabels: a hash of the outer addresses and ports, so every inner flow
// to one peer shares it).

/// The leased labels, in network byte order ready for sin6_flowinfo. Fixed after init.
public struct FlowLabelPool: Sendable {
    public let labels: [UInt32]
    /// Hashes inner packets on the --no-aqm path (the fq_codel path reuses its queueing hash).
    let hasher: FlowHasher

    /// How many labels the device asks for: enough that a handful of busy inner flows rarely share one, while
    /// leaving most of the kernel's 4096 system-wide leases to others (32 is the limit without CAP_NET_ADMIN).
    public static let wanted = 64

    /// `labels` in host order, non-zero, at most 20 bits each.
    public init(labels: [UInt32], hasher: FlowHasher) {
        precondition(!labels.isEmpty && labels.allSatisfy { $0 != 0 && $0 <= 0xfffff })
        self.labels = labels.map { $0.bigEndian }
        self.hasher = hasher
    }

    /// The label (host order) of an inner flow hash.
    @inline(__always) public func label(forHash hash: UInt32) -> UInt32 { UInt32(bigEndian: wire(forHash: hash)) }

    /// The label of an inner flow hash, network order. Rotated so the index does not follow fq_codel's queue
    /// index (both scale the top bits of the same hash).
    @inline(__always) func wire(forHash hash: UInt32) -> UInt32 {
        let h = (hash << 16) | (hash >> 16)
        return labels.withUnsafeBufferPointer { $0[Int((UInt64(h) &* UInt64($0.count)) >> 32)] }
    }

    /// Sets the flow label of an outer IPv6 destination; IPv4 (v4-mapped) endpoints keep none.
    @inline(__always) public func apply(to endpoint: inout Endpoint, hash: UInt32) {
        if !endpoint.isV4 { endpoint.raw.sin6_flowinfo = wire(forHash: hash) }
    }
}
