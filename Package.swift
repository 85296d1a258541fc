// swift-tools-version:6.0
// vpnfast: a userspace WireGuard-protocol data plane for Linux.
import PackageDescription

let package = Package(
    name: "vpnfast",
    products: [
        .executable(name: "vpnfast", targets: ["vpnfast"]),
        // For the benchmark package in Benchmarks/ (its own package, so its dependencies stay out of the product):
        // the data plane, and the in-memory TUN/UDP doubles that drive it.
        .library(name: "VPNFastCore", targets: ["Dataplane", "Crypto"]),
        .library(name: "VPNFastTestSupport", targets: ["TestSupport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // System libraries, found through pkg-config
        // (Debian: libsodium-dev libb2-dev liburing-dev libnuma-dev libssl-dev).
        .systemLibrary(name: "CSodium", path: "Sources/CSystem/CSodium", pkgConfig: "libsodium",
                       providers: [.apt(["libsodium-dev"])]),
        .systemLibrary(name: "CBlake2", path: "Sources/CSystem/CBlake2", pkgConfig: "libb2",
                       providers: [.apt(["libb2-dev"])]),
        .systemLibrary(name: "CURing", path: "Sources/CSystem/CURing", pkgConfig: "liburing",
                       providers: [.apt(["liburing-dev"])]),
        .systemLibrary(name: "CNuma", path: "Sources/CSystem/CNuma", pkgConfig: "numa",
                       providers: [.apt(["libnuma-dev"])]),
        .systemLibrary(name: "COpenSSL", path: "Sources/CSystem/COpenSSL", pkgConfig: "libcrypto",
                       providers: [.apt(["libssl-dev"])]),
        // Thin C layer over the kernel: TUN, sockets, mmsg, control messages, io_uring, NUMA.
        .target(name: "CShims", dependencies: ["CURing", "CNuma"],
                cSettings: [.define("_GNU_SOURCE")]),
        // The only user of libsodium, libb2 and OpenSSL's libcrypto.
        .target(name: "Crypto", dependencies: ["CSodium", "CBlake2", "COpenSSL"]),
        // The data plane: protocol, routing, queueing, I/O, pipeline.
        .target(name: "Dataplane", dependencies: [
            "CShims", "CNuma", "Crypto",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "vpnfast", dependencies: [
            "Dataplane", "Crypto",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Test-only C: a private network namespace for socket tests.
        .target(name: "CTestSupport", path: "Tests/CTestSupport", cSettings: [.define("_GNU_SOURCE")]),
        .target(name: "TestSupport", dependencies: [
            "Dataplane", "Crypto", .product(name: "Logging", package: "swift-log"),
        ], path: "Tests/TestSupport"),
        .testTarget(name: "CryptoTests", dependencies: ["Crypto"]),
        .testTarget(name: "DataplaneTests", dependencies: [
            "Dataplane", "Crypto", "TestSupport", "CTestSupport", .product(name: "Logging", package: "swift-log"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
