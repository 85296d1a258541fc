import CNuma
import Foundation
import Glibc
import TestSupport
import XCTest
@testable import Dataplane

final class PlacementTests: XCTestCase {
    /// `nodes` nodes of `perNode` consecutive CPUs each, less the CPUs in `offline`.
    static func topology(nodes: Int, perNode: Int, offline: Set<Int> = []) -> CPUTopology {
        CPUTopology(nodes: (0..<nodes).map { node in
            NodeCPUs(id: node, cpus: (node * perNode..<(node + 1) * perNode).filter { !offline.contains($0) })
        })
    }

    static let oneNode = topology(nodes: 1, perNode: 2)
    static let twoNodes = topology(nodes: 2, perNode: 8)
    static let fourNodesOneOffline = topology(nodes: 4, perNode: 4, offline: [15])
    /// Lopsided: node 0 has 8 CPUs, node 1 has 1 (so proportional rounding alone would starve node 1).
    static let lopsided = CPUTopology(nodes: [NodeCPUs(id: 0, cpus: Array(0..<8)), NodeCPUs(id: 1, cpus: [8])])
    /// Node ids with a gap (node 1 has no usable CPU and is dropped).
    static let gap = CPUTopology(nodes: [NodeCPUs(id: 0, cpus: [0, 1]), NodeCPUs(id: 1, cpus: []),
                                         NodeCPUs(id: 2, cpus: [4, 5])])

    /// (line, topology, threads, workers per node in node order).
    static let table: [(UInt, CPUTopology, Int, [Int])] = [
        (#line, oneNode, 1, [1]),
        (#line, oneNode, 2, [2]),
        (#line, oneNode, 8, [8]),
        (#line, twoNodes, 1, [1, 0]),
        (#line, twoNodes, 2, [1, 1]),
        (#line, twoNodes, 3, [2, 1]),
        (#line, twoNodes, 16, [8, 8]),
        (#line, twoNodes, 17, [9, 8]),
        (#line, fourNodesOneOffline, 4, [1, 1, 1, 1]),    // shares 1.07 ×3, 0.8: the 3-CPU node wins the spare
        (#line, fourNodesOneOffline, 7, [2, 2, 2, 1]),
        (#line, fourNodesOneOffline, 15, [4, 4, 4, 3]),   // one worker per CPU
        (#line, fourNodesOneOffline, 32, [9, 9, 8, 6]),   // 8.53 ×3, 6.4: the spares go to nodes 0 and 1
        (#line, fourNodesOneOffline, 3, [1, 1, 1, 0]),    // fewer workers than nodes
        (#line, lopsided, 2, [1, 1]),                     // rounding gives 2/0; every node gets one
        (#line, lopsided, 9, [8, 1]),
        (#line, lopsided, 3, [2, 1]),
        (#line, gap, 3, [2, 1]),
        (#line, twoNodes, 0, [0, 0]),
    ]

    func testPlanTable() {
        for (line, topology, threads, expected) in Self.table {
            let plan = Placement.plan(threads: threads, topology: topology)
            XCTAssertEqual(plan.count, threads, line: line)
            XCTAssertEqual(topology.nodes.map { node in plan.filter { $0.node == node.id }.count }, expected,
                           "workers per node", line: line)
            // Each worker carries its node's whole CPU set, and workers come grouped in node order.
            for worker in plan {
                XCTAssertEqual(worker.cpus, topology.nodes.first { $0.id == worker.node }?.cpus, line: line)
            }
            XCTAssertEqual(plan.map(\.node), plan.map(\.node).sorted(), line: line)
            XCTAssertEqual(Placement.plan(threads: threads, topology: topology), plan, "deterministic", line: line)
        }
    }

    /// The pipeline's home: the node with the most workers (ties to the lower id), nil on one node or unpinned.
    func testPipelineHome() {
        let unpinned = [WorkerPlacement(node: 0, cpus: []), WorkerPlacement(node: 1, cpus: [])]
        // (line, placements, expected home node)
        let cases: [(UInt, [WorkerPlacement]?, Int?)] = [
            (#line, nil, nil),
            (#line, Placement.plan(threads: 8, topology: Self.oneNode), nil),
            (#line, Placement.plan(threads: 1, topology: Self.twoNodes), nil),       // one worker, one node
            (#line, Placement.plan(threads: 2, topology: Self.twoNodes), 0),         // 1 + 1: the lower id
            (#line, Placement.plan(threads: 17, topology: Self.twoNodes), 0),        // 9 + 8
            (#line, Placement.plan(threads: 7, topology: Self.fourNodesOneOffline), 0),   // 2, 2, 2, 1
            (#line, Placement.plan(threads: 3, topology: Self.gap), 0),              // 2 on node 0, 1 on node 2
            (#line, [WorkerPlacement(node: 0, cpus: [0]), WorkerPlacement(node: 2, cpus: [4]),
                     WorkerPlacement(node: 2, cpus: [4])], 2),
            (#line, unpinned, nil),
        ]
        for (line, placements, expected) in cases {
            let home = Placement.pipelineHome(placements)
            XCTAssertEqual(home?.node, expected, line: line)
            if let home, let placements {
                XCTAssertEqual(home.cpus, placements.first { $0.node == home.node }?.cpus, "its node's CPUs",
                               line: line)
            }
        }
    }

    /// A slab bound to a node is usable and freed like any other.
    func testSlabOnNode() {
        for node in [nil, 0] as [Int?] {
            let pool = BatchPool(batches: 4, buffersPerBatch: 2, bufferSize: 3000, packetsPerBatch: 2, node: node)
            XCTAssertEqual(pool.slab.node, node)
            XCTAssertEqual(Int(bitPattern: pool.slab.base) % 64, 0)
            let b = pool.take()!
            b.buffers[1].initializeMemory(as: UInt8.self, repeating: 7, count: pool.slab.slotSize)
            XCTAssertEqual(b.buffers[1].load(fromByteOffset: pool.slab.slotSize - 1, as: UInt8.self), 7)
            pool.give(b)
        }
    }

    /// Workers placed on two (injected) nodes: the slabs are bound to the home node, the pipeline threads are
    /// pinned to its CPUs, and the tunnel carries packets both ways.
    func testDeviceWithWorkersOnTwoNodes() throws {
        // Node 1 is made up, on CPU 0 as well (every machine has CPU 0); node 0 holds two of the three workers.
        let placements = [WorkerPlacement(node: 0, cpus: [0]), WorkerPlacement(node: 0, cpus: [0]),
                          WorkerPlacement(node: 1, cpus: [0])]
        let pair = try DevicePair(threads: 3, placements: placements)
        pair.start()
        defer { pair.stop() }
        for device in [pair.a, pair.b] {
            XCTAssertEqual(device.receivePool.slab.node, 0)
            XCTAssertEqual(device.sendQueueing?.slab.node, 0)
        }
        pair.tunA.inject([DevicePair.packet(0)])
        XCTAssertEqual(pair.tunB.collect(atLeast: 1), [DevicePair.packet(0)])
        let burst = (1...300).map { DevicePair.packet($0) }
        pair.tunA.inject(burst)
        XCTAssertTrue(pair.tunB.collect(atLeast: burst.count) == burst)
        let back = (1...100).map { DevicePair.packet($0, fromA: false) }
        pair.tunB.inject(back)
        XCTAssertTrue(pair.tunA.collect(atLeast: back.count) == back)
        // Each device's four pipeline threads run on the home node's CPUs.
        var pinned: [String: [String]] = [:]
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        for tid in tasks {
            guard let status = try? String(contentsOfFile: "/proc/self/task/\(tid)/status", encoding: .utf8) else {
                continue
            }
            let fields = Dictionary(status.split(separator: "\n").compactMap { line -> (String, String)? in
                let parts = line.split(separator: ":", maxSplits: 1)
                return parts.count == 2 ? (String(parts[0]), parts[1].trimmingCharacters(in: .whitespaces)) : nil
            }, uniquingKeysWith: { first, _ in first })
            if let name = fields["Name"], ["vf-tun-reader", "vf-udp-writer", "vf-udp-reader", "vf-tun-writer"].contains(name) {
                pinned[name, default: []].append(fields["Cpus_allowed_list"] ?? "?")
            }
        }
        XCTAssertEqual(pinned.count, 4, "\(pinned)")
        for (name, lists) in pinned {
            XCTAssertEqual(lists.count, 2, name)
            XCTAssertTrue(lists.allSatisfy { $0 == "0" }, "\(name): \(lists)")
        }
    }

    func testCPUSetsOfTheInjectedTopologies() {
        XCTAssertEqual(Self.fourNodesOneOffline.nodes.map(\.cpus),
                       [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14]])
        XCTAssertEqual(Self.fourNodesOneOffline.cpuCount, 15)
        XCTAssertEqual(Placement.plan(threads: 2, topology: Self.twoNodes),
                       [WorkerPlacement(node: 0, cpus: Array(0..<8)), WorkerPlacement(node: 1, cpus: Array(8..<16))])
        XCTAssertEqual(Self.gap.nodes.map(\.id), [0, 2], "a node without CPUs is left out; ids are kept")
        // Unsorted input is put in order.
        XCTAssertEqual(CPUTopology(nodes: [NodeCPUs(id: 1, cpus: [3, 2]), NodeCPUs(id: 0, cpus: [1, 0])]),
                       CPUTopology(nodes: [NodeCPUs(id: 0, cpus: [0, 1]), NodeCPUs(id: 1, cpus: [2, 3])]))
    }

    func testNoCPUsGivesUnpinnedWorkers() {
        XCTAssertEqual(Placement.plan(threads: 2, topology: CPUTopology(nodes: [])),
                       [WorkerPlacement(node: 0, cpus: []), WorkerPlacement(node: 0, cpus: [])])
    }

    /// Over many random topologies: the counts add up, stay within one of the exact share unless a
    /// node had to be given its one worker, and every node has one when there are enough workers.
    func testPlanPropertiesOnRandomTopologies() {
        var random = SeededRandom(seed: 0x9e37_79b9)
        for _ in 0..<2000 {
            let nodeCount = Int(random.next() % 6) + 1
            var next = 0
            let nodes = (0..<nodeCount).map { id -> NodeCPUs in
                let count = Int(random.next() % 9) + 1
                defer { next += count }
                return NodeCPUs(id: id * 2, cpus: Array(next..<next + count))
            }
            let topology = CPUTopology(nodes: nodes)
            let threads = Int(random.next() % 70)
            let plan = Placement.plan(threads: threads, topology: topology)
            XCTAssertEqual(plan.count, threads)
            let counts = nodes.map { node in plan.filter { $0.node == node.id }.count }
            if threads >= nodeCount { XCTAssertFalse(counts.contains(0), "\(nodes) \(threads)") }
            let starved = nodes.contains { threads * $0.cpus.count < topology.cpuCount }
            if !starved || threads < nodeCount {
                for (node, count) in zip(nodes, counts) {
                    let share = Double(threads * node.cpus.count) / Double(topology.cpuCount)
                    XCTAssertLessThan(abs(Double(count) - share), 1, "\(nodes) \(threads)")
                }
            }
        }
    }

    // MARK: - This machine

    func testDiscoverFindsCPUZero() {
        let topology = CPUTopology.discover()
        XCTAssertFalse(topology.nodes.isEmpty)
        XCTAssertTrue(topology.nodes.contains { $0.cpus.contains(0) }, "\(topology)")
        XCTAssertEqual(Set(topology.nodes.flatMap(\.cpus)).count, topology.cpuCount, "no CPU on two nodes")
        XCTAssertLessThanOrEqual(topology.cpuCount, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        XCTAssertEqual(Placement.plan(threads: topology.cpuCount, topology: topology).count, topology.cpuCount)
    }

    /// Pinning runs on a thread of its own so the test runner's thread keeps its affinity.
    func testPinToCPUZero() {
        let result = onNewThread { () -> (Bool, [Int]?) in
            (Placement.pinCurrentThread(to: [0]), Affinity.currentThread())
        }
        XCTAssertTrue(result.0)
        XCTAssertEqual(result.1, [0], "the kernel reports the thread confined to CPU 0")
    }

    func testPinRefusalsReturnFalse() {
        let result = onNewThread { () -> ([Bool], [Int]?) in
            let before = Affinity.currentThread()
            let answers = [
                Placement.pinCurrentThread(to: []),
                Placement.pinCurrentThread(to: [-1]),
                Placement.pinCurrentThread(to: [Affinity.maximumCPUs]),
                Placement.pinCurrentThread(to: [Affinity.maximumCPUs - 1]),   // no such CPU here: EINVAL
            ]
            return (answers, Affinity.currentThread() == before ? nil : Affinity.currentThread())
        }
        XCTAssertEqual(result.0, [false, false, false, false])
        XCTAssertNil(result.1, "a refused pin leaves the affinity alone")
    }

    func testAllocateOnNode() {
        for (bytes, node) in [(1 << 20, 0), (100, 0), (0, 0), (4096, 999), (4096, -1)] {
            let memory = Placement.allocate(bytes: bytes, node: node)
            XCTAssertEqual(Int(bitPattern: memory) % 4096, 0, "page-aligned")
            memory.initializeMemory(as: UInt8.self, repeating: 0xa5, count: bytes)
            if bytes > 0, node == 0, Placement.numaAvailable {
                // Ask the kernel where the first page went.
                var page: UnsafeMutableRawPointer? = memory
                var status: Int32 = -1
                XCTAssertEqual(numa_move_pages(0, 1, &page, nil, &status, 0), 0)
                XCTAssertEqual(status, 0, "page on node 0")
            }
            Placement.free(memory, bytes: bytes, node: node)
        }
    }

    private func onNewThread<R: Sendable>(_ body: @escaping @Sendable () -> R) -> R {
        let box = ResultBox<R>()
        let thread = PipelineThread(name: "pin-test") { box.value = body() }
        thread.join()
        return box.value!
    }

    private final class ResultBox<R>: @unchecked Sendable {  // written by the thread before join, read after
        var value: R?
    }
}
