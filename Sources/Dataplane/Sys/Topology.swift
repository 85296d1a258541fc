// Topology.swift: which CPUs sit on which NUMA node, pinning a thread to CPUs, and memory placed
// on a node. The libnuma and affinity calls live here; Pipeline/Placement.swift decides where the
// workers go from the plain CPUTopology value.
//
// Without NUMA support (libnuma's numa_available() < 0: no NUMA in the kernel, or a sandbox that
// forbids get_mempolicy) the machine is one node holding every CPU, and node memory is ordinary
// page-aligned memory.

import CNuma
import CShims
import Glibc

/// The CPUs of one NUMA node that this process may run on.
public struct NodeCPUs: Equatable, Sendable {
    public var id: Int
    public var cpus: [Int]
    public init(id: Int, cpus: [Int]) { self.id = id; self.cpus = cpus }
}

public struct CPUTopology: Equatable, Sendable {
    /// Ascending by node id, each node's CPUs ascending; nodes without a usable CPU are left out
    /// (their ids are kept on the others, so a node id always means the kernel's node).
    public var nodes: [NodeCPUs]

    /// Takes the nodes as given, sorted and without CPU-less nodes (tests inject topologies here).
    public init(nodes: [NodeCPUs]) {
        self.nodes = nodes.filter { !$0.cpus.isEmpty }
            .map { NodeCPUs(id: $0.id, cpus: $0.cpus.sorted()) }
            .sorted { $0.id < $1.id }
    }

    public var cpuCount: Int { nodes.reduce(0) { $0 + $1.cpus.count } }

    /// This machine as the calling thread sees it: each node's CPUs (numa_node_to_cpus) that the
    /// thread may run on. The kernel reports only online CPUs in an affinity mask, so offline ones
    /// drop out, and so do CPUs a cgroup or `taskset` withholds. Call it from the main thread before
    /// any pinning, or it sees only the CPUs the caller was pinned to.
    public static func discover() -> CPUTopology {
        let usable = Affinity.currentThread() ?? Array(0..<max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        guard Placement.numaAvailable, numa_max_node() >= 0 else {
            return CPUTopology(nodes: [NodeCPUs(id: 0, cpus: usable)])
        }
        guard let mask = numa_allocate_cpumask() else { return CPUTopology(nodes: [NodeCPUs(id: 0, cpus: usable)]) }
        defer { numa_bitmask_free(mask) }
        var nodes: [NodeCPUs] = []
        for node in 0...numa_max_node() where numa_node_to_cpus(node, mask) == 0 {
            let cpus = usable.filter { numa_bitmask_isbitset(mask, UInt32($0)) != 0 }
            nodes.append(NodeCPUs(id: Int(node), cpus: cpus))
        }
        let topology = CPUTopology(nodes: nodes)
        // A usable CPU that no node claims would be a libnuma/sysfs disagreement: rather than lose
        // CPUs, treat the machine as one node.
        guard topology.cpuCount == usable.count else { return CPUTopology(nodes: [NodeCPUs(id: 0, cpus: usable)]) }
        return topology
    }
}

extension Placement {
    /// libnuma must be asked first, once, before any other of its calls.
    static let numaAvailable: Bool = numa_available() >= 0

    /// Pins the calling thread to `cpus` (pthread_setaffinity_np). Returns false, and leaves the
    /// affinity as it was, if `cpus` is empty or holds an id out of range, or if the kernel refuses
    /// (CPUs offline or outside this process's cpuset).
    public static func pinCurrentThread(to cpus: [Int]) -> Bool {
        guard let highest = cpus.max(), cpus.allSatisfy({ $0 >= 0 }), highest < Affinity.maximumCPUs else {
            return false
        }
        return Affinity.withMask(bytes: max(Affinity.minimumMaskBytes, (highest / 64 + 1) * 8)) { mask, bytes in
            for cpu in cpus { mask[cpu / 64] |= 1 << UInt64(cpu % 64) }
            return vf_thread_set_affinity(mask, bytes) == 0
        }
    }

    /// `bytes` of memory whose pages live on `node` (numa_alloc_onnode: page-aligned, zeroed, placed
    /// on first touch). A node that has no memory, or no NUMA at all, gives ordinary page-aligned
    /// memory. Traps when out of memory. Release it with `free(_:bytes:node:)` and the same values.
    public static func allocate(bytes: Int, node: Int) -> UnsafeMutableRawPointer {
        precondition(bytes >= 0, "negative allocation")
        let size = max(bytes, 1)
        guard numaAvailable else { return .allocate(byteCount: size, alignment: Int(sysconf(Int32(_SC_PAGESIZE)))) }
        let memory = nodeHasMemory(node) ? numa_alloc_onnode(size, Int32(node)) : numa_alloc(size)
        guard let memory else { preconditionFailure("out of memory allocating \(size) bytes on NUMA node \(node)") }
        return memory
    }

    public static func free(_ pointer: UnsafeMutableRawPointer, bytes: Int, node: Int) {
        if numaAvailable {
            numa_free(pointer, max(bytes, 1))
        } else {
            pointer.deallocate()
        }
    }

    private static func nodeHasMemory(_ node: Int) -> Bool {
        node >= 0 && node <= Int(numa_max_node()) && numa_node_size64(Int32(node), nil) > 0
    }
}

/// CPU affinity masks as the kernel takes them: an array of 64-bit words, bit n for CPU n.
enum Affinity {
    /// Linux's upper bound on CPU ids (CONFIG_NR_CPUS is at most 8192).
    static let maximumCPUs = 8192
    /// glibc's cpu_set_t: room for 1024 CPUs.
    static let minimumMaskBytes = 128

    /// The CPUs the calling thread may run on (the kernel leaves out offline ones), or nil if the
    /// kernel will not say.
    static func currentThread() -> [Int]? {
        // The kernel wants a mask at least as long as its CPU count; grow until it fits.
        var bytes = minimumMaskBytes
        while bytes <= maximumCPUs / 8 {
            let cpus: [Int]? = withMask(bytes: bytes) { mask, bytes in
                guard vf_thread_get_affinity(mask, bytes) == 0 else { return nil }
                return (0..<bytes * 8).filter { mask[$0 / 64] & (1 << UInt64($0 % 64)) != 0 }
            }
            if let cpus { return cpus.isEmpty ? nil : cpus }
            bytes *= 2
        }
        return nil
    }

    /// A zeroed mask of `bytes` (a multiple of 8) for the length of `body`.
    static func withMask<R>(bytes: Int, _ body: (UnsafeMutablePointer<UInt64>, Int) -> R) -> R {
        let words = UnsafeMutablePointer<UInt64>.allocate(capacity: bytes / 8)
        words.initialize(repeating: 0, count: bytes / 8)
        defer { words.deallocate() }
        return body(words, bytes)
    }
}
