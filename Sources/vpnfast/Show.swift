// `vpnfast show [IFACE]`: ask running tunnels for their state through their control sockets.
import ArgumentParser
import CShims
import Dataplane
import Glibc

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show the state of running vpnfast interfaces: settings, counters, and per peer traffic, queue, sojourn time, drops and ECN marks.",
        discussion: "Without IFACE, every vpnfast interface running in this network namespace is shown. The control "
            + "sockets live in /run/vpnfast (in another network namespace: /run/vpnfast/net-INODE) and answer root "
            + "only; a socket nobody answers (left by a run that did not exit cleanly) is skipped with a note. "
            + "Sojourn percentiles are over every packet dequeued from the peer's fq_codel since start, and again "
            + "over the recent window only (the last 10 to 20 s; its span is shown); --json includes the since-start "
            + "histogram (bucket:count) so two readings can be subtracted for a window of your own.")

    @Argument(help: "The interface (default: all in this network namespace).")
    var interface: String?

    @Flag(name: .long, help: "Print JSON instead of text.")
    var json = false

    func validate() throws {
        if let n = interface, n.isEmpty || n.utf8.count > 15 || n.contains("/") || n.hasPrefix(".")
            || n.contains(where: { $0 == " " || $0 == "\n" }) {
            throw ValidationError("IFACE must be an interface name: 1 to 15 characters, no '/', spaces or leading '.'")
        }
    }

    func run() throws {
        let dir = ControlSocketPath.directory()
        let names: [String]
        if let interface {
            names = [interface]
        } else {
            switch Show.listSockets(dir) {
            case .failure(let message):
                printError(message.description)
                throw ExitCode(1)
            case .success(let found):
                guard !found.isEmpty else {
                    printError("no vpnfast interface is running in this network namespace (no control socket in \(dir))")
                    throw ExitCode(1)
                }
                names = found
            }
        }
        var reports: [StatusReport] = []
        var failed = false
        var stale: [String] = []
        for name in names {
            let path = "\(dir)/\(name).sock"
            do {
                let text = try StatusClient.request("show", path: path)
                reports.append(try StatusProtocol.decode(text))
            } catch StatusClient.Failure.connect(_, let errno) where interface == nil && errno == ECONNREFUSED {
                // Listing all: a socket nobody answers is left over from a run that did not exit cleanly (the
                // next `vpnfast up` on that interface replaces it). Say so, and go on with the running ones.
                printError("note: skipping \(name): \(path) is a stale control socket that nobody answers")
                stale.append(name)
            } catch let e as StatusClient.Failure {
                printError(Show.explain(e, interface: name, path: path))
                failed = true
            } catch {
                printError("\(name): \(error)")
                failed = true
            }
        }
        if !failed && reports.isEmpty {
            printError("no vpnfast interface is running in this network namespace (only stale control sockets in "
                + "\(dir): \(stale.joined(separator: ", ")))")
            throw ExitCode(1)
        }
        var out = ""
        if json {
            out = ShowFormat.json(reports) + "\n"
        } else {
            let now = vf_realtime_ns()
            out = reports.map { ShowFormat.text($0, nowUnixNs: now) }.joined(separator: "\n")
        }
        print(out, terminator: "")
        if failed { throw ExitCode(1) }
    }

    /// The interfaces with a control socket in `dir`, sorted.
    static func listSockets(_ dir: String) -> Result<[String], CLIError> {
        guard let d = opendir(dir) else {
            let e = errno
            if e == EACCES || e == EPERM {
                return .failure(CLIError("permission denied: the control sockets in \(dir) answer root only; run vpnfast show as root"))
            }
            if e == ENOENT { return .failure(CLIError("no vpnfast interface is running in this network namespace (no \(dir))")) }
            return .failure(CLIError("cannot list \(dir): \(String(cString: strerror(e)))"))
        }
        defer { closedir(d) }
        var names: [String] = []
        while let ent = readdir(d) {
            let name = withUnsafePointer(to: &ent.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            if name.hasSuffix(".sock") && name.count > 5 { names.append(String(name.dropLast(5))) }
        }
        return .success(names.sorted())
    }

    static func explain(_ e: StatusClient.Failure, interface: String, path: String) -> String {
        switch e {
        case .connect(_, let errno) where errno == ENOENT || errno == ENOTDIR:
            return "no vpnfast interface named \(interface) is running in this network namespace (no control socket \(path))"
        case .connect(_, let errno) where errno == EACCES || errno == EPERM:
            return "permission denied: the control socket of \(interface) (\(path)) answers root only; run vpnfast show as root"
        case .connect(_, let errno) where errno == ECONNREFUSED:
            return "\(interface) is not running (\(path) is a stale control socket that nobody answers)"
        default:
            return "\(interface): \(e)"
        }
    }
}
