// swift-tools-version:6.1
// vpnfast's benchmarks, in their own package so that the benchmark framework and its dependencies stay out of
// the main build. Run them with `swift package benchmark` from this directory (or perf/alloc.sh).
import PackageDescription

let package = Package(
    name: "vpnfast-benchmarks",
    dependencies: [
        .package(name: "vpnfast", path: ".."),
        // The malloc interposer counts allocations (mallocCountTotal) without jemalloc.
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // Allocations per packet on the encrypt and decrypt paths of two devices in steady state.
        .executableTarget(
            name: "DataPathAllocations",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "VPNFastCore", package: "vpnfast"),
                .product(name: "VPNFastTestSupport", package: "vpnfast"),
            ],
            path: "Benchmarks/DataPathAllocations",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
