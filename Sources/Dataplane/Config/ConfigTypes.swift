// What a wg-quick style configuration file says, after it has been checked (see ConfigFile.swift).
//
// Keys stay as the base64 text the user wrote (already checked to decode to 32 bytes); turning them into key
// material is the crypto module's job.

/// A problem in a configuration file, located by file name and 1-based line number.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let line: Int
    public let message: String

    public init(file: String, line: Int, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    /// "FILE:LINE: MESSAGE"
    public var description: String { "\(file):\(line): \(message)" }
}

/// A peer's address as written: an IP literal or a host name, and a port.
public struct EndpointSpec: Hashable, Sendable, CustomStringConvertible {
    /// An IPv4 literal, an IPv6 literal without brackets, or a host name.
    public let host: String
    public let port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// "198.18.0.2:51820", "[fd18::2]:51820" or "example.com:51820"; nil if malformed.
    public init?(_ text: String) {
        guard case .success(let spec) = EndpointSpec.parse(text) else { return nil }
        self = spec
    }

    /// The address if `host` is an IP literal.
    public var address: IPAddress? { IPAddress(host) }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    struct Invalid: Error {
        let reason: String
    }

    /// Parses HOST:PORT, explaining what is wrong when it fails.
    static func parse(_ text: String) -> Result<EndpointSpec, Invalid> {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                return .failure(Invalid(reason: "missing ']' after the IPv6 address"))
            }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.first == ":" else { return .failure(Invalid(reason: "missing ':PORT' after ']'")) }
            portText = rest.dropFirst()
            guard let address = IPAddress(String(host)), !address.isV4 else {
                return .failure(Invalid(reason: "'\(host)' in brackets is not an IPv6 address"))
            }
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                return .failure(Invalid(reason: "missing ':PORT'"))
            }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") {
                return .failure(Invalid(reason: "an IPv6 address must be in brackets, as in [fd18::2]:51820"))
            }
            guard !host.isEmpty else { return .failure(Invalid(reason: "empty host")) }
            let allowed = host.utf8.allSatisfy { c in
                IPAddress.isDigit(c) || (c | 0x20 >= UInt8(ascii: "a") && c | 0x20 <= UInt8(ascii: "z"))
                    || c == UInt8(ascii: "-") || c == UInt8(ascii: ".") || c == UInt8(ascii: "_")
            }
            guard allowed else { return .failure(Invalid(reason: "'\(host)' is not a valid host name")) }
        }
        guard let port = parseDecimal(portText, max: 65535) else {
            return .failure(Invalid(reason: "port '\(portText)' is not a number from 1 to 65535"))
        }
        guard port != 0 else { return .failure(Invalid(reason: "port 0 is not allowed")) }
        return .success(EndpointSpec(host: String(host), port: UInt16(port)))
    }
}

/// An interface address as written, host bits kept: 198.19.0.1/24 is address 198.19.0.1 on a /24.
public struct InterfaceAddress: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let length: UInt8

    /// "198.19.0.1/24", "fd19::1/64"; a bare address is a /32 or /128.
    public init?(_ text: String) {
        guard let (address, length) = parseAddressAndLength(text) else { return nil }
        self.address = address
        self.length = length
    }

    public init(address: IPAddress, length: UInt8) {
        precondition(Int(length) <= address.bitWidth, "prefix length \(length) too long for \(address)")
        self.address = address
        self.length = length
    }

    /// The network the address is on.
    public var prefix: IPPrefix { IPPrefix(address: address, length: length) }

    public var description: String { "\(address)/\(length)" }
}

/// One [Peer] section.
public struct PeerConfig: Sendable {
    /// Base64 as written; decodes to 32 bytes.
    public var publicKey: String
    /// Base64 as written; decodes to 32 bytes.
    public var presharedKey: String?
    public var allowedIPs: [IPPrefix]
    public var endpoint: EndpointSpec?
    /// Seconds; nil when absent, 0 or "off".
    public var persistentKeepalive: UInt16?
    /// Line of the [Peer] header.
    public var line: Int

    public init(publicKey: String, presharedKey: String? = nil, allowedIPs: [IPPrefix] = [],
                endpoint: EndpointSpec? = nil, persistentKeepalive: UInt16? = nil, line: Int = 0) {
        self.publicKey = publicKey
        self.presharedKey = presharedKey
        self.allowedIPs = allowedIPs
        self.endpoint = endpoint
        self.persistentKeepalive = persistentKeepalive
        self.line = line
    }
}

/// The [Interface] section and the peers that follow it.
public struct InterfaceConfig: Sendable {
    /// Base64 as written; decodes to 32 bytes.
    public var privateKey: String
    /// As written; 0 asks for a random port, like leaving it out.
    public var listenPort: UInt16?
    public var addresses: [InterfaceAddress]
    public var mtu: Int?
    public var peers: [PeerConfig]
    /// wg-quick keys that are accepted but not acted on (DNS, Table, PreUp, ...), with the key as written.
    public var ignoredKeys: [(line: Int, key: String)]

    public init(privateKey: String, listenPort: UInt16? = nil, addresses: [InterfaceAddress] = [], mtu: Int? = nil,
                peers: [PeerConfig] = [], ignoredKeys: [(line: Int, key: String)] = []) {
        self.privateKey = privateKey
        self.listenPort = listenPort
        self.addresses = addresses
        self.mtu = mtu
        self.peers = peers
        self.ignoredKeys = ignoredKeys
    }
}

/// Digits only (no sign, no spaces), at most `max`.
func parseDecimal<S: StringProtocol>(_ text: S, max: Int) -> Int? {
    guard !text.isEmpty, text.utf8.count <= 10, text.utf8.allSatisfy(IPAddress.isDigit) else { return nil }
    let value = text.utf8.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
    return value <= max ? value : nil
}
