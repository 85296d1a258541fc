// `vpnfast up CONFIG`: bring up a tunnel from a wg-quick style file and run it in the foreground.
import ArgumentParser
import CShims
import Crypto
import Dataplane
import Glibc
import Logging

struct Up: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Create the interface described by CONFIG and run the tunnel until SIGINT or SIGTERM.",
        discussion: "CONFIG is a wg-quick style file: [Interface] PrivateKey, ListenPort, Address, MTU; one or more "
            + "[Peer] sections with PublicKey, PresharedKey, AllowedIPs, Endpoint, PersistentKeepalive. The interface "
            + "is named after the file (wg0.conf gives wg0) unless --interface is given. vpnfast assigns the "
            + "addresses, sets the MTU (default 1420), brings the link up and adds a route for each peer's AllowedIPs "
            + "(except default routes). On SIGINT or SIGTERM it removes the interface and exits 0. SIGUSR1 logs the "
            + "counters.")

    @Argument(help: "The configuration file.")
    var config: String

    @Option(name: .long, help: "Interface name (default: the config file's name without .conf).")
    var interface: String?

    @Option(name: .long, help: "Crypto worker threads (default: the number of online CPUs), spread over the NUMA nodes in proportion to their CPUs and pinned to their node.")
    var threads: Int?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(name: .long, help: "I/O backend: auto, mmsg (recvmmsg/sendmmsg on the UDP socket, read/writev on the TUN) or uring (io_uring for both). auto uses the one measured faster on this kernel and logs which and why.")
    var io: String = "auto"

    @Flag(name: .long, help: "Turn fq_codel and CoDel off: a plain FIFO ahead of the crypto pool and no receive-side CoDel (to measure their effect).")
    var noAqm = false

    @Flag(name: .long, help: "CoDel drops instead of marking ECN-capable packets CE.")
    var noEcn = false

    @Option(name: .long, help: "CoDel target sojourn time in milliseconds.")
    var codelTarget: Double = 5

    @Option(name: .long, help: "CoDel interval in milliseconds.")
    var codelInterval: Double = 100

    @Option(name: .long, help: "Outer DSCP: zero (as kernel WireGuard: nothing about the inner traffic leaks) or copy (the inner DSCP is carried to the outer header so priority marking survives the tunnel). ECN is always carried (RFC 6040).")
    var dscp: String = "zero"

    @Option(name: .long, help: ArgumentHelp("Shape what vpnfast sends to RATE, counting outer bytes (IP, UDP and WireGuard overhead), so the bottleneck queue forms in vpnfast's fq_codel, where CoDel manages it. tc units: bit, kbit, mbit, gbit, tbit (SI, 1000-based) or kibit, mibit, gibit, tibit (1024-based); bps, kbps, mbps, gbps (BYTES per second, as in tc). A unit is required. Set it a little below the WAN's rate (e.g. 95mbit for a 100 Mbit/s link). With --no-aqm the plain FIFO waits instead, so the queue forms in the TUN's own queue; it then sends whole TUN reads (up to 128 packets) at a time, so it is burstier than with fq_codel. Handshakes and keepalives are not counted.", valueName: "RATE"))
    var rate: String?

    @Flag(name: .long, help: "Set the outer IPv6 flow label from the inner flow hash, so routers hashing it keep inner flows apart (IPv4 endpoints are unaffected; without it the kernel's automatic label is one per peer). Labels are leased from the kernel at start; if none can be leased, vpnfast logs it and sends without.")
    var flowlabel = false

    @Option(name: .long, help: "AEAD library for transport data: auto (measure both at start, use the faster), libsodium, openssl.")
    var aead: String = "auto"

    @Option(name: .long, help: "Kernel offloads: on (TUN TSO/USO with GSO split and GRO coalesce, UDP GSO/GRO where the kernel has them) or off (one packet per read, write and datagram).")
    var offloads: String = "on"

    @Option(name: .long, help: "For testing: rekey after this many seconds instead of 120 (initiator side).")
    var rekeyAfterTime: Int?

    func validate() throws {
        if let t = threads, !(1...1024).contains(t) { throw ValidationError("--threads must be from 1 to 1024") }
        if let r = rekeyAfterTime, !(1...120).contains(r) {
            throw ValidationError("--rekey-after-time must be from 1 to 120 seconds")
        }
        if !(codelTarget > 0 && codelTarget <= 1000) { throw ValidationError("--codel-target must be in (0, 1000] ms") }
        if !(codelInterval >= codelTarget && codelInterval <= 10000) {
            throw ValidationError("--codel-interval must be at least the target and at most 10000 ms")
        }
        if dscp != "zero" && dscp != "copy" { throw ValidationError("--dscp must be zero or copy") }
        if let r = rate {
            do { _ = try Rate.parse(r) } catch { throw ValidationError("--rate: \(error)") }
        }
        if !["auto", "mmsg", "uring"].contains(io) { throw ValidationError("--io must be auto, mmsg or uring") }
        if offloads != "on" && offloads != "off" { throw ValidationError("--offloads must be on or off") }
        if aead != "auto" && AEADImplementation(rawValue: aead) == nil {
            throw ValidationError("--aead must be auto, libsodium or openssl")
        }
        if Logger.Level(rawValue: logLevel) == nil { throw ValidationError("unknown --log-level '\(logLevel)'") }
        // What the kernel takes as a fixed name (no '%d' template: the control socket is named before the TUN
        // exists), and what `vpnfast show IFACE` accepts.
        if let n = interface, n.isEmpty || n.utf8.count > 15 || n.hasPrefix(".")
            || n.contains(where: { "/%: \t\n".contains($0) }) {
            throw ValidationError("--interface must be 1 to 15 characters without '/', '%', ':', whitespace or a leading '.'")
        }
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel)!
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "vpnfast")
        let threadCount = threads ?? max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        var loaded: LoadedConfig
        do {
            loaded = try ConfigLoader.load(path: config, threads: threadCount)
        } catch let e as CLIError {
            printError(e.description)
            throw ExitCode(1)
        }
        if let r = rekeyAfterTime { loaded.device.rekeyAfterTime = UInt64(r) * 1_000_000_000 }
        loaded.device.dscp = dscp == "copy" ? .copy : .zero
        loaded.device.aqm = !noAqm
        loaded.device.ecn = !noEcn
        loaded.device.codelTarget = UInt64(codelTarget * 1e6)
        loaded.device.codelInterval = UInt64(codelInterval * 1e6)
        loaded.device.rate = try rate.map { try Rate.parse($0) }
        loaded.device.flowLabel = flowlabel
        if let r = loaded.device.rate {
            logger.info("egress shaped to \(r) (\(r.bitsPerSecond) bit/s of outer bytes)")
        }
        logger.info("queueing: \(noAqm ? "FIFO (--no-aqm)" : "fq_codel per peer, CoDel target \(codelTarget) ms interval \(codelInterval) ms, ECN \(noEcn ? "off" : "on")")")
        if let chosen = AEADImplementation(rawValue: aead) {
            loaded.device.aead = chosen
        } else {
            loaded.device.aead = AEADSelection.fastest()
            logger.info("AEAD: \(loaded.device.aead.rawValue) (measured faster here at 1420 bytes; --aead overrides)")
        }
        let topology = CPUTopology.discover()
        loaded.device.placements = Placement.plan(threads: threadCount, topology: topology)
        logger.info("CPU topology: \(topology.nodes.map { "node \($0.id): CPUs \($0.cpus)" }.joined(separator: "; "))")
        for w in loaded.warnings { logger.warning("\(w)") }
        let name = interface ?? Up.defaultName(config)
        guard !name.isEmpty, name.utf8.count <= 15, !name.hasPrefix("."),
              !name.contains(where: { "/%: \t\n".contains($0) }) else {
            printError("interface name '\(name)' (from the file name) is not 1 to 15 characters without '/', '%', ':', whitespace or a leading '.'; use --interface")
            throw ExitCode(1)
        }

        // The control socket first: a live vpnfast already serving this interface here is reported as such.
        let status: StatusServer
        do {
            status = try StatusServer(path: ControlSocketPath.path(interface: name))
        } catch {
            printError("\(error)")
            throw ExitCode(1)
        }
        defer { status.stop() }

        // Block the signals before any thread starts so that only the signalfd sees them.
        let sigfd = vf_signalfd_setup()
        guard sigfd >= 0 else {
            printError("cannot set up signal handling: \(SystemError("signalfd", negated: Int(sigfd)))")
            throw ExitCode(1)
        }
        let counters = Counters()
        let tun: LinuxTun
        let bind: any UDPBind
        var backendNote: String
        var backendName = "recvmmsg/sendmmsg"
        let (uringOK, uringReason) = UringBind.probe()
        do {
            tun = try LinuxTun(name: name, offloads: offloads == "on", uring: io == "uring" && uringOK,
                               counters: counters)
        } catch {
            printError("cannot create interface \(name): \(error)")
            throw ExitCode(1)
        }
        do {
            let onGSODisabled: @Sendable () -> Void = {
                logger.warning("the kernel refused UDP segmentation (EIO); sending without UDP GSO from now on")
            }
            let useUring: Bool
            switch io {
            case "uring":
                guard uringOK else {
                    tun.close()
                    printError("--io uring: io_uring is not usable here: \(uringReason)")
                    throw ExitCode(1)
                }
                useUring = true
                backendNote = "io_uring (--io uring)"
            case "mmsg":
                useUring = false
                backendNote = "recvmmsg/sendmmsg (--io mmsg)"
            default:
                // Measured on kernel 6.18 (perf/results/20261207T021335Z): TCP is on par, and UDP moves more
                // with recvmmsg/sendmmsg and read/writev than with the io_uring backend (whose socket receive
                // copies out of its provided buffers). auto takes the faster one.
                useUring = false
                backendNote = uringOK
                    ? "recvmmsg/sendmmsg (auto: io_uring is available but measured slower here; --io uring selects it)"
                    : "recvmmsg/sendmmsg (auto: io_uring unavailable: \(uringReason))"
            }
            if useUring {
                backendName = "io_uring"
                // Without GRO a buffer holds one datagram: the largest transport message of this MTU.
                bind = try UringBind(port: loaded.listenPort, offloads: offloads == "on",
                                     maxDatagram: MessageLayout.maxTransportSize(mtu: loaded.mtu),
                                     onGSODisabled: onGSODisabled)
            } else {
                bind = try MmsgBind(port: loaded.listenPort, offloads: offloads == "on", onGSODisabled: onGSODisabled)
            }
        } catch {
            tun.close()
            printError("\(error)")
            throw ExitCode(1)
        }
        do {
            try InterfaceSetup.configure(name: tun.name, mtu: loaded.mtu, addresses: loaded.addresses,
                                         routes: loaded.routes, warn: { logger.warning("\($0)") })
        } catch {
            printError("configuring \(tun.name) failed: \(error)")
            tun.close(); bind.close()
            throw ExitCode(1)
        }
        let device: Device
        do {
            device = try Device(config: loaded.device, tun: tun, bind: bind, logger: logger, counters: counters)
        } catch {
            printError("\(error)")
            tun.close(); bind.close()
            throw ExitCode(1)
        }
        logger.info("interface \(tun.name) up, public key \(device.identity.publicKey)")
        logger.info("offloads: TUN \(tun.offloadFlags == 0 ? "none" : "0x" + String(tun.offloadFlags, radix: 16)) (TSO \(tun.segmentationOffload ? "on" : "off")), UDP GRO \(bind.datagramsPerMessage > 1 ? "on" : "off")")
        logger.info("I/O backend: UDP \(backendNote); TUN \(tun.ioNote)")
        device.start()
        let extra: [StatusField] = [
            .init("io", backendName),
            .init("tun_io", tun.usesRing ? "io_uring" : "read/writev"),
            .init("offloads", offloads),
            .init("tun_offloads", "0x" + String(tun.offloadFlags, radix: 16)),
            .init("udp_gro", bind.datagramsPerMessage > 1 ? "on" : "off"),
        ]
        let ifname = tun.name
        status.start { [device] request in
            switch request {
            case .show: return StatusProtocol.encode(device.statusReport(name: ifname, extra: extra))
            }
        }
        logger.info("control socket \(status.path) (vpnfast show \(ifname))")
        while true {
            let sig = vf_signalfd_read(sigfd)
            if sig == SIGUSR1 {
                device.logCounters()
                continue
            }
            if sig == SIGINT || sig == SIGTERM || sig < 0 {
                logger.info("signal \(sig), shutting down")
                break
            }
        }
        status.stop()
        device.stop()
        device.logCounters()
        tun.close()
        bind.close()
        logger.info("interface \(tun.name) removed")
    }

    /// wg-quick's rule: the file's base name without ".conf".
    static func defaultName(_ path: String) -> String {
        var base = path.split(separator: "/").last.map(String.init) ?? path
        if base.hasSuffix(".conf") { base.removeLast(5) }
        return base
    }
}

func printError(_ message: String) {
    var stderr = StandardError()
    print("vpnfast: \(message)", to: &stderr)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        var bytes = Array(string.utf8)
        _ = Glibc.write(2, &bytes, bytes.count)
    }
}
