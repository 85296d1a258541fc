// Addresses, MTU, link state and routes of the TUN interface, set with iproute2 as wg-quick does.
import Dataplane
import Foundation

enum InterfaceSetup {
    /// Runs `ip ARGS`; throws with ip's own message on failure.
    static func ip(_ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: findIP())
        p.arguments = args
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        if p.terminationStatus != 0 {
            let msg = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            throw CLIError("ip \(args.joined(separator: " ")): \(msg.isEmpty ? "exit status \(p.terminationStatus)" : msg)")
        }
    }

    static func findIP() -> String {
        for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] where FileManager.default.isExecutableFile(atPath: dir + "/ip") {
            return dir + "/ip"
        }
        return "/usr/sbin/ip"
    }

    static func configure(name: String, mtu: Int, addresses: [InterfaceAddress], routes: [IPPrefix]) throws {
        try ip(["link", "set", "dev", name, "mtu", String(mtu)])
        for a in addresses {
            try ip([a.address.isV4 ? "-4" : "-6", "address", "add", "\(a.address)/\(a.length)", "dev", name]
                   + (a.address.isV4 ? [] : ["nodad"]))
        }
        try ip(["link", "set", "dev", name, "up"])
        for r in routes {
            try ip([r.address.isV4 ? "-4" : "-6", "route", "replace", r.description, "dev", name])
        }
    }
}
