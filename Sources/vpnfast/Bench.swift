// `vpnfast bench crypto`: single-core AEAD throughput of each library, the numbers behind
// AEADSelection's choice. Prints a table, or JSON for the perf harness (--json).
import ArgumentParser
import Crypto
import Dataplane
import Foundation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure parts of the data plane on this machine.",
        subcommands: [BenchCrypto.self])
}

struct BenchCrypto: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crypto",
        abstract: "Single-core ChaCha20-Poly1305 seal and open throughput of each library.",
        discussion: """
            Seals and opens batches of packets in place on the calling thread, once per library and packet \
            size. Each measurement is split into rounds interleaved across libraries and the best round \
            counts. GB/s counts payload bytes (not the 16-byte tag); open times include copying the sealed \
            batch back in. The last line names the library `auto` picks: the one with the least seal+open \
            time at 1420 bytes, measured the way vpnfast does at start.
            """)

    @Option(name: .long, help: "Seconds per measurement (one library, one size, seal or open).")
    var seconds: Double = 1

    @Option(name: .long, help: "Packet sizes in bytes, comma-separated.")
    var sizes: String = "64,1420,8192"

    @Option(name: .long, help: "Packets per batch.")
    var batch: Int = 128

    @Option(name: .long, help: "Rounds each measurement is split into.")
    var rounds: Int = 3

    @Option(name: .long, help: "Pin the measuring thread to this CPU (default: unpinned).")
    var cpu: Int?

    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false

    func validate() throws {
        guard (0.01...600).contains(seconds) else { throw ValidationError("--seconds must be from 0.01 to 600") }
        guard (1...4096).contains(batch) else { throw ValidationError("--batch must be from 1 to 4096") }
        guard (1...100).contains(rounds) else { throw ValidationError("--rounds must be from 1 to 100") }
        _ = try packetSizes()
    }

    private func packetSizes() throws -> [Int] {
        let sizes = self.sizes.split(separator: ",").map { Int($0.trimmingCharacters(in: [" "])) }
        guard !sizes.isEmpty, sizes.allSatisfy({ $0 != nil && (0...65535).contains($0!) }) else {
            throw ValidationError("--sizes must be a comma-separated list of sizes from 0 to 65535")
        }
        return sizes.map { $0! }
    }

    func run() throws {
        if let cpu, !Placement.pinCurrentThread(to: [cpu]) { throw CLIError("cannot pin to CPU \(cpu)") }
        let missing = AEADImplementation.allCases.filter { !$0.isAvailable }
        var results: [AEADThroughput] = []
        for size in try packetSizes() {
            results += AEADSelection.measure(packetSize: size, seconds: seconds, batchSize: batch, rounds: rounds)
        }
        let auto = AEADSelection.fastest()
        let report = Report(cpu: cpuModel(), pinnedCPU: cpu, seconds: seconds, batch: batch, rounds: rounds, auto: auto.rawValue,
                            unavailable: missing.map(\.rawValue), results: results.map(Report.Row.init))
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report.table)
        }
    }

    /// The "model name" line of /proc/cpuinfo, so recorded numbers say what they ran on.
    private func cpuModel() -> String {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
              let colon = line.firstIndex(of: ":")
        else { return "unknown" }
        return String(line[line.index(after: colon)...]).trimmingCharacters(in: [" ", "\t"])
    }
}

/// What `bench crypto` found; the JSON form is read by the perf harness.
private struct Report: Encodable {
    struct Row: Encodable {
        var implementation: String
        var bytes: Int
        var sealGBps: Double
        var sealMpps: Double
        var openGBps: Double
        var openMpps: Double

        init(_ result: AEADThroughput) {
            implementation = result.implementation.rawValue
            bytes = result.packetSize
            sealGBps = result.sealGBps
            sealMpps = result.sealMpps
            openGBps = result.openGBps
            openMpps = result.openMpps
        }
    }

    var cpu: String
    var pinnedCPU: Int?
    var seconds: Double
    var batch: Int
    var rounds: Int
    var auto: String
    var unavailable: [String]
    var results: [Row]

    var table: String {
        var lines = [
            "ChaCha20-Poly1305, one core — CPU: \(cpu)",
            "\(format(seconds, 2)) s per measurement, batches of \(batch), best of \(rounds) rounds"
                + (pinnedCPU.map { ", pinned to CPU \($0)" } ?? ""),
            "",
            pad("library", 12) + pad("bytes", 8, right: true) + pad("seal GB/s", 12, right: true)
                + pad("seal Mpps", 12, right: true) + pad("open GB/s", 12, right: true) + pad("open Mpps", 12, right: true),
        ]
        for row in results {
            lines.append(pad(row.implementation, 12) + pad("\(row.bytes)", 8, right: true)
                         + pad(format(row.sealGBps, 3), 12, right: true) + pad(format(row.sealMpps, 3), 12, right: true)
                         + pad(format(row.openGBps, 3), 12, right: true) + pad(format(row.openMpps, 3), 12, right: true))
        }
        lines.append("")
        for name in unavailable { lines.append("\(name): not available in this process") }
        lines.append("auto would pick: \(auto) (least seal+open time at 1420 bytes)")
        return lines.joined(separator: "\n")
    }

    private func format(_ value: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", value) }

    private func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, width - text.count))
        return right ? fill + text : text + fill
    }
}
