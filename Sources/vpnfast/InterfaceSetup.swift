// Addresses, MTU, link state and routes of the TUN interface, set with iproute2 as wg-quick does.
import CShims
import Dataplane
import Glibc

enum InterfaceSetup {
    /// Runs `ip ARGS`; throws with ip's own message on failure. (Not Foundation's Process: it cannot see the
    /// child exit in a network namespace whose loopback is down, and would hang there; see CShims/spawn.c.)
    static func ip(_ args: [String]) throws {
        let path = findIP()
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var err = [CChar](repeating: 0, count: 4096)
        var status: Int32 = 0
        let rc = argv.withUnsafeBufferPointer { av in
            vf_run(path, av.baseAddress, &err, err.count, &status)
        }
        if rc < 0 {
            throw CLIError("cannot run \(path): \(String(cString: strerror(-rc)))")
        }
        if status != 0 {
            let msg = String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                .split(whereSeparator: \.isNewline).joined(separator: "; ")
            throw CLIError("ip \(args.joined(separator: " ")): \(msg.isEmpty ? "exit status \(status)" : msg)")
        }
    }

    static func findIP() -> String {
        for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] where access(dir + "/ip", X_OK) == 0 {
            return dir + "/ip"
        }
        return "/usr/sbin/ip"
    }

    /// The most segments the kernel may put in one TSO/USO super-packet it hands the TUN: one read batch. The
    /// tun-reader splits a super-packet into a batch's packet slots, so a larger one (TCP with a small MSS at a high
    /// rate) could never fit and would be dropped (counted as tx_drop_bad_offload), again on every retransmit.
    static let maxBurstSegments = PacketBatch.capacity

    static func configure(name: String, mtu: Int, addresses: [InterfaceAddress], routes: [IPPrefix],
                          warn: (String) -> Void) throws {
        try ip(["link", "set", "dev", name, "mtu", String(mtu)])
        do {
            try ip(["link", "set", "dev", name, "gso_max_segs", String(maxBurstSegments)])
        } catch {
            warn("cannot cap \(name)'s TSO/USO bursts at \(maxBurstSegments) segments (\(error)); larger bursts "
                 + "are dropped and counted as tx_drop_bad_offload")
        }
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
