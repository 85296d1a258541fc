// Placement.swift: where the crypto workers run on a NUMA machine.
//
// Workers are spread over the nodes in proportion to each node's usable CPUs, so every core
// gets about the same share of workers. A worker is pinned to its node's whole CPU set, not to
// one CPU: the scheduler still balances within the node, and more workers than CPUs (or CPUs
// shared with other work) cost no more than unpinned threads would. With workers on several
// nodes, the pipeline (its TUN and UDP threads and its packet slabs) lives on one home node, the
// one with the most workers: packets are read into memory of the node that reads them. Workers
// on other nodes still seal and open some of them across the interconnect; per-node pipelines
// (a multi-queue TUN and one UDP socket per node) would keep every packet on its node, and are
// not built yet. The plan is a pure function of the topology; the affinity and allocation calls
// are in Sys/Topology.swift.

/// One worker's home: its NUMA node and the CPUs it may run on (empty: leave it unpinned).
public struct WorkerPlacement: Equatable, Sendable {
    public var node: Int
    public var cpus: [Int]
    public init(node: Int, cpus: [Int]) { self.node = node; self.cpus = cpus }
}

public enum Placement {
    /// Spreads `threads` workers over the nodes in proportion to their CPU counts, rounding by
    /// largest remainder (ties to the lower node id). When there are at least as many workers as
    /// nodes, every node gets one: an empty node takes a worker from the node furthest above its
    /// exact share. Workers come grouped by node in ascending node order, each with its node's CPU
    /// set. The same input always gives the same plan. A topology without CPUs gives unpinned
    /// workers on node 0.
    public static func plan(threads: Int, topology: CPUTopology) -> [WorkerPlacement] {
        guard threads > 0 else { return [] }
        let nodes = topology.nodes.filter { !$0.cpus.isEmpty }
        guard !nodes.isEmpty else { return Array(repeating: WorkerPlacement(node: 0, cpus: []), count: threads) }

        // Node i's exact share is threads * cpus_i / total; keep it as an integer part and a
        // remainder over `total` so ties are exact.
        let total = nodes.reduce(0) { $0 + $1.cpus.count }
        var counts = nodes.map { threads * $0.cpus.count / total }
        let remainders = nodes.map { threads * $0.cpus.count % total }
        let byRemainder = nodes.indices.sorted {
            remainders[$0] != remainders[$1] ? remainders[$0] > remainders[$1] : $0 < $1
        }
        for index in byRemainder.prefix(threads - counts.reduce(0, +)) { counts[index] += 1 }

        if threads >= nodes.count {
            // Excess over the exact share, times `total`: counts_i * total - threads * cpus_i.
            func excess(_ index: Int) -> Int { counts[index] * total - threads * nodes[index].cpus.count }
            while let empty = counts.firstIndex(of: 0) {
                // Some node has two or more: the counts add up to threads >= nodes with a zero among them.
                let donor = nodes.indices.filter { counts[$0] > 1 }.max {
                    excess($0) != excess($1) ? excess($0) < excess($1) : $0 > $1
                }!
                counts[donor] -= 1
                counts[empty] += 1
            }
        }

        return zip(nodes, counts).flatMap { node, count in
            Array(repeating: WorkerPlacement(node: node.id, cpus: node.cpus), count: count)
        }
    }

    /// Where the pipeline's own threads (TUN and UDP readers and writers) and its packet slabs belong when the
    /// workers span several nodes: the node with the most workers (ties to the lower id), with its CPUs, so the
    /// packets those threads read land in memory of the node that reads them and of most of the workers. Nil
    /// when the workers are all on one node or unpinned: nothing to choose, and memory and threads stay as the
    /// kernel places them.
    public static func pipelineHome(_ placements: [WorkerPlacement]?) -> WorkerPlacement? {
        guard let placements else { return nil }
        let pinned = placements.filter { !$0.cpus.isEmpty }
        let nodes = Set(pinned.map(\.node))
        guard nodes.count > 1 else { return nil }
        let counts = Dictionary(pinned.map { ($0.node, 1) }, uniquingKeysWith: +)
        let home = nodes.sorted().max { counts[$0]! < counts[$1]! || (counts[$0]! == counts[$1]! && $0 > $1) }!
        return pinned.first { $0.node == home }
    }
}
