// vpnfast: the command line.
import ArgumentParser

@main
struct VPNFast: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vpnfast",
        abstract: "A userspace WireGuard-protocol VPN data plane for Linux.",
        discussion: "vpnfast speaks the WireGuard protocol and interoperates with kernel WireGuard and wireguard-go. "
            + "It reads wg-quick style configuration files.",
        subcommands: [Up.self, Show.self, GenKey.self, PubKey.self, Bench.self]
    )
}

/// Exit with a message on stderr, the way every user-facing failure is reported.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}
