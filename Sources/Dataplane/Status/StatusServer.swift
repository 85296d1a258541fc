// The control socket that `vpnfast up` serves for `vpnfast show`, on its own plain pthread (never the data path).
//
// Where: /run/vpnfast/IFACE.sock in the initial network namespace, /run/vpnfast/net-INODE/IFACE.sock in any
// other (INODE names the namespace: the inode of /proc/self/ns/net). /run is shared between namespaces, and
// several namespaces may each run an interface of the same name; `ip netns exec NS vpnfast show` finds the
// socket of NS the same way. Directories are 0700 and the socket 0600, owned by root; the server also checks
// the connecting user (SO_PEERCRED).
//
// Claiming the path: a socket that nobody answers is stale (a crashed run) and is replaced; one that answers
// belongs to a live vpnfast for the same interface, and starting is refused.
//
// Serving: one connection at a time, one request each. A client gets `clientTimeoutMs` in total to send its
// line and read the answer, so one that sends nothing, or garbage, or stops reading, holds the server up at most
// that long; a request longer than StatusProtocol.maxRequestBytes is answered with an error without reading on.
import CShims
import Glibc
import Synchronization

public enum ControlSocketPath {
    public static let root = "/run/vpnfast"

    /// The directory of this network namespace's control sockets.
    /// The fixed inode of the initial network namespace on recent kernels (PROC_NET_INIT_INO; dynamic namespace
    /// inodes start at 0xF0000000, so it never names another one).
    static let initialNamespaceInode: Int64 = 0xEFFF_FFF9

    public static func directory(root: String = ControlSocketPath.root) -> String {
        let own = vf_netns_inode(0)
        if own > 0 && (own == initialNamespaceInode || vf_netns_inode(1) == own) { return root }
        // Another namespace (or pid 1's cannot be read, as for a user who may not see it).
        return own > 0 ? "\(root)/net-\(own)" : root
    }

    public static func path(interface: String, root: String = ControlSocketPath.root) -> String {
        "\(directory(root: root))/\(interface).sock"
    }
}

public enum StatusServerError: Error, CustomStringConvertible {
    case alreadyRunning(path: String)
    case system(path: String, SystemError)

    public var description: String {
        switch self {
        case .alreadyRunning(let path):
            return "another vpnfast already serves this interface in this network namespace (its control socket \(path) answers)"
        case .system(let path, let e):
            return "control socket \(path): \(e)"
        }
    }
}

public final class StatusServer: @unchecked Sendable {  // fds are fixed after init; `thread` is touched only by start/stop on the owner's thread
    public let path: String
    private let listenFD: Int32
    private let wakeFD: Int32
    private let allowedUID: UInt32
    private let clientTimeoutMs: Int
    private var thread: PipelineThread?
    private let stopping = Atomic<Bool>(false)
    /// Connections answered (any answer, errors included), for tests.
    public let answered = Atomic<Int>(0)

    /// Creates the directories (0700), claims `path` (replacing a stale socket) and listens. Serving starts
    /// with `start(respond:)`; clients that connect before wait in the listen backlog.
    public init(path: String, allowedUID: UInt32 = 0, clientTimeoutMs: Int = 1000) throws {
        self.path = path
        self.allowedUID = allowedUID
        self.clientTimeoutMs = clientTimeoutMs
        // Every directory below the top level (e.g. /run) is made private. Another server stopping in this
        // namespace may remove an emptied directory just before we bind: then make it again (bounded).
        var fd: Int32 = -ENOENT
        for _ in 0..<3 where fd == -ENOENT {
            try Self.makeDirectories(for: path)
            fd = vf_unix_listen(path, 8)
            if fd == -EADDRINUSE {
                let probe = vf_unix_connect(path, 500)
                if probe >= 0 {
                    _ = vf_close(probe)
                    throw StatusServerError.alreadyRunning(path: path)
                }
                // Only a refused connection means nobody listens (a stale socket from a run that did not clean
                // up). EAGAIN or a timeout is a live server whose backlog is full: never take its path.
                guard probe == -ECONNREFUSED || probe == -ENOENT else {
                    throw StatusServerError.alreadyRunning(path: path)
                }
                _ = vf_unlink(path)
                fd = vf_unix_listen(path, 8)
            }
        }
        if fd < 0 { throw StatusServerError.system(path: path, SystemError("listen", negated: Int(fd))) }
        let wake = vf_eventfd()
        if wake < 0 {
            _ = vf_close(fd); _ = vf_unlink(path)
            throw StatusServerError.system(path: path, SystemError("eventfd", negated: Int(wake)))
        }
        listenFD = fd
        wakeFD = wake
        boundInode = Self.inode(of: path)
    }

    /// The inode of the socket file we bound (0 if it could not be read).
    private var boundInode: UInt64 = 0

    private static func inode(of path: String) -> UInt64 {
        var st = stat()
        return lstat(path, &st) == 0 ? UInt64(st.st_ino) : 0
    }

    private static func makeDirectories(for path: String) throws {
        let parts = path.split(separator: "/").dropLast()
        var dir = ""
        for (i, part) in parts.enumerated() {
            dir += "/" + part
            if i == 0 && parts.count > 1 { continue }   // the top level, e.g. /run or /tmp: leave it alone
            let rc = vf_private_directory(dir)
            if rc < 0 { throw StatusServerError.system(path: path, SystemError("directory \(dir)", negated: Int(rc))) }
        }
    }

    /// Serves until `stop()`; `respond` runs on the server's thread and returns the whole answer's text.
    public func start(respond: @escaping @Sendable (StatusRequest) -> String) {
        precondition(thread == nil && !stopping.load(ordering: .relaxed), "status server started twice")
        thread = PipelineThread(name: "vf-status") { [self] in serve(respond) }
    }

    /// Stops serving, closes the socket and removes its path.
    public func stop() {
        if stopping.exchange(true, ordering: .acquiringAndReleasing) { return }
        _ = vf_eventfd_signal(wakeFD)
        thread?.join()
        thread = nil
        _ = vf_close(listenFD)
        if Self.inode(of: path) == boundInode { _ = vf_unlink(path) }  // never another instance's socket
        _ = vf_close(wakeFD)
        // The namespace's directory goes too once empty (namespaces come and go; /run/vpnfast should not fill
        // with their directories). rmdir fails harmlessly while another interface's socket is in it.
        if let slash = path.lastIndex(of: "/"), path[path.index(after: slash)...].hasSuffix(".sock"),
           path[..<slash].split(separator: "/").last?.hasPrefix("net-") == true {
            _ = rmdir(String(path[..<slash]))
        }
    }

    deinit { stop() }

    private func serve(_ respond: (StatusRequest) -> String) {
        while !stopping.load(ordering: .acquiring) {
            let r = vf_poll2(listenFD, wakeFD, 1000)
            if r < 0 || r & 2 != 0 { if r < 0 { usleep(10_000) }; continue }
            if r & 1 == 0 { continue }
            let conn = vf_unix_accept(listenFD)
            if conn < 0 {
                // Out of file descriptors (EMFILE/ENFILE) leaves the listener readable: back off, do not spin.
                if conn != -EINTR && conn != -EAGAIN { usleep(10_000) }
                continue
            }
            handle(conn, respond)
            _ = vf_close(conn)
            answered.add(1, ordering: .relaxed)
        }
    }

    private func handle(_ conn: Int32, _ respond: (StatusRequest) -> String) {
        let deadline = vf_monotonic_ns() + UInt64(clientTimeoutMs) * 1_000_000
        _ = vf_socket_timeouts(conn, Int32(clientTimeoutMs))
        let uid = vf_peer_uid(conn)
        guard uid >= 0, UInt32(uid) == allowedUID else {
            send(conn, "error=permission denied (the control socket answers root only)\n\n", deadline: deadline)
            return
        }
        var buffer = [UInt8](repeating: 0, count: StatusProtocol.maxRequestBytes + 2)
        var have = 0
        var result: Result<StatusRequest, StatusProtocolError>?
        while result == nil {
            let now = vf_monotonic_ns()
            guard now < deadline else { return }   // too slow: hang up without an answer
            let r = vf_poll2(conn, wakeFD, Int32(max(1, (deadline - now) / 1_000_000)))
            if r < 0 || r & 2 != 0 { return }
            if r & 1 == 0 { continue }
            let n = buffer.withUnsafeMutableBytes { vf_read(conn, $0.baseAddress! + have, $0.count - have) }
            if n <= 0 { return }   // closed or failed before a full line
            have += n
            result = StatusProtocol.parseRequest(buffer[0..<have])
            if result == nil && have == buffer.count { result = .failure(.requestTooLong) }
        }
        switch result! {
        case .success(let request): send(conn, respond(request), deadline: deadline)
        case .failure(let e): send(conn, StatusProtocol.encodeError(e), deadline: deadline)
        }
    }

    private func send(_ conn: Int32, _ text: String, deadline: UInt64) {
        var bytes = Array(text.utf8)
        var off = 0
        bytes.withUnsafeMutableBytes { raw in
            while off < raw.count && vf_monotonic_ns() < deadline {
                let n = vf_send(conn, raw.baseAddress! + off, raw.count - off)
                if n <= 0 { return }
                off += n
            }
        }
    }
}

/// The client side: one request, the whole answer (bounded in size and time).
public enum StatusClient {
    public enum Failure: Error, CustomStringConvertible {
        case connect(path: String, errno: Int32)
        case io(path: String, errno: Int32)
        case timeout(path: String)
        case tooLarge(path: String)

        public var description: String {
            switch self {
            case .connect(let p, let e): return "cannot connect to \(p): \(String(cString: strerror(e)))"
            case .io(let p, let e): return "reading from \(p): \(String(cString: strerror(e)))"
            case .timeout(let p): return "no complete answer from \(p) in time"
            case .tooLarge(let p): return "the answer from \(p) is larger than \(StatusClient.maxAnswerBytes) bytes"
            }
        }
    }

    public static let maxAnswerBytes = 256 << 20

    /// Sends `request` (one line) and returns the answer's text, up to and including its empty line.
    public static func request(_ request: String, path: String, timeoutMs: Int = 5000) throws -> String {
        let fd = vf_unix_connect(path, Int32(timeoutMs))
        if fd < 0 { throw Failure.connect(path: path, errno: Int32(-fd)) }
        defer { _ = vf_close(fd) }
        var line = Array((request + "\n").utf8)
        let sent = vf_send(fd, &line, line.count)
        if sent < 0 { throw Failure.io(path: path, errno: Int32(-sent)) }
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        let deadline = vf_monotonic_ns() + UInt64(timeoutMs) * 1_000_000
        while true {
            let n = chunk.withUnsafeMutableBytes { vf_read(fd, $0.baseAddress!, $0.count) }
            if n == 0 { break }
            if n < 0 {
                if n == -EAGAIN || n == -EWOULDBLOCK { throw Failure.timeout(path: path) }
                if n == -EINTR { continue }
                throw Failure.io(path: path, errno: Int32(-n))
            }
            answer.append(contentsOf: chunk[0..<n])
            if answer.count > maxAnswerBytes { throw Failure.tooLarge(path: path) }
            if answer.count >= 2 && answer[answer.count - 1] == 10 && answer[answer.count - 2] == 10 { break }
            if vf_monotonic_ns() > deadline { throw Failure.timeout(path: path) }
        }
        return String(decoding: answer, as: UTF8.self)
    }
}
