// The control socket's line protocol (`vpnfast show`), as pure functions.
//
//   request   one line: `show` (ASCII, at most maxRequestBytes before the newline; a trailing \r is ignored).
//   answer    `key=value` lines, then one empty line. The interface's fields come first; each `peer=KEY` line
//             starts the section of one peer. Device counters are `counter.NAME=VALUE`.
//   error     `error=MESSAGE` and an empty line, for a request that is unknown, malformed or too long.
// One request per connection; the server closes the connection after answering.

public struct StatusField: Equatable, Sendable {
    public var key: String
    public var value: String
    public init(_ key: String, _ value: String) { self.key = key; self.value = value }
}

/// A decoded answer: the interface's fields and one field list per peer, in the order sent.
public struct StatusReport: Equatable, Sendable {
    public var interface: [StatusField] = []
    public var peers: [[StatusField]] = []
    public init() {}

    /// The first value of `key` in the interface section.
    public subscript(_ key: String) -> String? { interface.first { $0.key == key }?.value }
}

public enum StatusRequest: Equatable, Sendable {
    case show
}

public enum StatusProtocolError: Error, Equatable, CustomStringConvertible {
    case requestTooLong
    case emptyRequest
    case notText
    case unknownRequest(String)
    /// The other side answered `error=...`.
    case remote(String)
    /// An answer that is not key=value lines ending with an empty line.
    case badAnswer(String)

    public var description: String {
        switch self {
        case .requestTooLong: return "request too long (at most \(StatusProtocol.maxRequestBytes) bytes)"
        case .emptyRequest: return "empty request"
        case .notText: return "request is not a line of printable ASCII"
        case .unknownRequest(let r): return "unknown request '\(r)' (known: show)"
        case .remote(let m): return m
        case .badAnswer(let m): return "malformed answer: \(m)"
        }
    }
}

public enum StatusProtocol {
    /// Longest request line accepted, newline excluded.
    public static let maxRequestBytes = 64

    /// Parses the bytes received so far. nil: no complete line yet and not too long, read more.
    public static func parseRequest(_ bytes: ArraySlice<UInt8>) -> Result<StatusRequest, StatusProtocolError>? {
        guard let nl = bytes.firstIndex(of: UInt8(ascii: "\n")) else {
            return bytes.count > maxRequestBytes + 1 ? .failure(.requestTooLong) : nil
        }
        var line = bytes[bytes.startIndex..<nl]
        if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
        if line.count > maxRequestBytes { return .failure(.requestTooLong) }
        if line.contains(where: { $0 < 0x20 || $0 > 0x7e }) { return .failure(.notText) }
        let text = String(decoding: line, as: UTF8.self)
        let word = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        if word.isEmpty { return .failure(.emptyRequest) }
        if word == ["show"] { return .success(.show) }
        return .failure(.unknownRequest(text))
    }

    public static func parseRequest(_ bytes: [UInt8]) -> Result<StatusRequest, StatusProtocolError>? {
        parseRequest(bytes[...])
    }

    /// A value as sent: newlines cannot occur inside one (they are replaced by spaces).
    static func clean(_ s: String) -> String {
        s.contains(where: { $0 == "\n" || $0 == "\r" }) ? String(s.map { $0 == "\n" || $0 == "\r" ? " " : $0 }) : s
    }

    /// The answer's text: interface fields, then each peer's (starting with its `peer=` field), then an empty line.
    public static func encode(_ report: StatusReport) -> String {
        var out = ""
        for f in report.interface { out += "\(f.key)=\(clean(f.value))\n" }
        for p in report.peers { for f in p { out += "\(f.key)=\(clean(f.value))\n" } }
        return out + "\n"
    }

    public static func encodeError(_ error: StatusProtocolError) -> String {
        "error=\(clean(error.description))\n\n"
    }

    /// Decodes a complete answer; throws `.remote` for an error answer and `.badAnswer` for anything malformed
    /// (including one cut short before its empty line).
    public static func decode(_ text: String) throws -> StatusReport {
        if text == "\n" { return StatusReport() }
        guard text.hasSuffix("\n\n") else { throw StatusProtocolError.badAnswer("incomplete (no empty line at the end)") }
        var report = StatusReport()
        let body = text.dropLast(2)
        if body.isEmpty { return report }
        for (n, line) in body.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            guard let eq = line.firstIndex(of: "="), eq != line.startIndex else {
                throw StatusProtocolError.badAnswer("line \(n + 1) is not key=value")
            }
            let field = StatusField(String(line[..<eq]), String(line[line.index(after: eq)...]))
            if n == 0 && field.key == "error" { throw StatusProtocolError.remote(field.value) }
            if field.key == "peer" {
                report.peers.append([field])
            } else if report.peers.isEmpty {
                report.interface.append(field)
            } else {
                report.peers[report.peers.count - 1].append(field)
            }
        }
        return report
    }
}
