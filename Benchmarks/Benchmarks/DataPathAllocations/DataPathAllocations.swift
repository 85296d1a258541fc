// Allocations on vpnfast's data path in steady state: two devices stream one fixed packet A → B through
// allocation-free test doubles (GeneratorTun, RingNetwork), so every malloc counted while packets flow comes
// from the pipeline itself. The goal is none per packet.
//
// Each benchmark builds a pair, completes the handshake, warms up, and then one iteration pushes
// `packetsPerIteration` packets and waits until the far side has them all. mallocCountTotal is per iteration:
// divide by `packetsPerIteration` for allocations per packet (perf/alloc.sh prints that).
//   encrypt path   A alone: TUN read, route, nonces, seal (workers), send; B's bind counts and discards.
//   decrypt path   B alone: receive, open (workers), replay and source checks, TUN write; the packets are sealed
//                  on A's keypair by a TransportSource (A stopped).
//   pair           both at once.
//   canary         the pair, with B's test TUN allocating once per packet on purpose: it must count about one
//                  malloc per packet, or the counting does not see the device's threads and the zeros mean nothing.
import Benchmark
import Foundation
import TestSupport

/// Packets per measured iteration and for warming up (environment: VPNFAST_ALLOC_PACKETS, VPNFAST_ALLOC_WARMUP).
let packetsPerIteration = environmentInt("VPNFAST_ALLOC_PACKETS") ?? 100_000
let warmupPackets = environmentInt("VPNFAST_ALLOC_WARMUP") ?? 50_000

func environmentInt(_ name: String) -> Int? {
    ProcessInfo.processInfo.environment[name].flatMap { Int($0) }.flatMap { $0 > 0 ? $0 : nil }
}

/// The pair a benchmark set up, for its teardown (which gets no setup state).
final class RunningPair: @unchecked Sendable {  // set in setup, read in teardown, both on the runner's thread
    var pair: StreamingPair?
}

let benchmarks: @Sendable () -> Void = {
    let paths: [(name: String, mode: StreamingPair.Mode, canary: Bool)] = [
        ("encrypt path", .send, false), ("decrypt path", .receive, false), ("encrypt+decrypt pair", .both, false),
        ("canary", .both, true),
    ]
    for threads in [1, 2] {
        for (name, mode, canary) in paths where !canary || threads == 1 {
            let running = RunningPair()
            Benchmark(
                name,
                configuration: .init(
                    metrics: [.mallocCountTotal, .wallClock, .throughput],
                    tags: ["threads": "\(threads)", "packets": "\(packetsPerIteration)"],
                    warmupIterations: 1,
                    scalingFactor: .one,
                    maxDuration: .seconds(10),
                    maxIterations: 10,
                    // For baseline comparisons: any malloc in most iterations is a regression.
                    thresholds: [.mallocCountTotal: BenchmarkThresholds(absolute: [.p90: 0])]
                )
            ) { (benchmark: Benchmark, pair: StreamingPair) in
                if !pair.push(packetsPerIteration) {
                    benchmark.error("\(name): \(packetsPerIteration) packets did not arrive within the timeout")
                }
            } setup: {
                let pair = try StreamingPair(threads: threads, canary: canary)
                running.pair = pair
                try pair.start(mode: mode, warmup: warmupPackets)
                return pair
            } teardown: {
                running.pair?.stop()
                running.pair = nil
            }
        }
    }
}
