// The parser for wg-quick style configuration files.
//
//     [Interface]                 exactly one, before any peer
//     PrivateKey = <base64>       required
//     ListenPort = 51820          0...65535
//     Address = 198.19.0.1/24, fd19::1/64     repeatable list; host bits kept
//     MTU = 1420                  576...65535, at least 1280 if any Address is IPv6
//     DNS, Table, PreUp, PostUp, PreDown, PostDown, SaveConfig, FwMark: accepted, not acted on (ignoredKeys)
//
//     [Peer]                      any number
//     PublicKey = <base64>        required, unique across peers
//     PresharedKey = <base64>
//     AllowedIPs = 0.0.0.0/0, ::/0            repeatable list; host bits cleared
//     Endpoint = 198.18.0.2:51820 | [fd18::2]:51820 | host.example:51820
//     PersistentKeepalive = 25 | off          0 and off mean none
//
// Section names and keys are case-insensitive; '#' starts a comment anywhere on a line; spaces around '=' and
// around list items are optional; a single-valued key may appear once per section. The first problem found
// is thrown, naming its line.

public enum ConfigParser {
    public static func parse(_ text: String, file: String) throws(ConfigError) -> InterfaceConfig {
        var parser = Parser(file: file)
        var number = 0
        // Split on the byte: as Characters, "\r\n" is one grapheme and would not match "\n".
        for raw in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            number += 1
            try parser.take(line: Substring(raw), number: number)
        }
        return try parser.finish()
    }
}

/// The keys the parser knows, by lowercased name.
private enum Key: String, CaseIterable {
    // [Interface]
    case privateKey = "PrivateKey", listenPort = "ListenPort", address = "Address", mtu = "MTU"
    case dns = "DNS", table = "Table", preUp = "PreUp", postUp = "PostUp", preDown = "PreDown"
    case postDown = "PostDown", saveConfig = "SaveConfig", fwMark = "FwMark"
    // [Peer]
    case publicKey = "PublicKey", presharedKey = "PresharedKey", allowedIPs = "AllowedIPs"
    case endpoint = "Endpoint", persistentKeepalive = "PersistentKeepalive"

    static let byLowercasedName: [String: Key] = Dictionary(
        uniqueKeysWithValues: allCases.map { ($0.rawValue.lowercased(), $0) })

    var isPeerKey: Bool {
        switch self {
        case .publicKey, .presharedKey, .allowedIPs, .endpoint, .persistentKeepalive: return true
        default: return false
        }
    }

    /// Accepted for wg-quick compatibility and recorded, but not acted on.
    var isIgnored: Bool {
        switch self {
        case .dns, .table, .preUp, .postUp, .preDown, .postDown, .saveConfig, .fwMark: return true
        default: return false
        }
    }

    /// Lists accumulate; ignored keys may repeat (wg-quick runs every PostUp); the rest may appear once.
    var isSingle: Bool { !isIgnored && self != .address && self != .allowedIPs }
}

private struct Parser {
    enum Section {
        case none
        case interface
        case peer
    }

    let file: String
    var section = Section.none
    var interfaceLine: Int?
    var config = InterfaceConfig(privateKey: "")
    var privateKeyLine: Int?
    var mtuLine: Int?
    var firstV6AddressLine: Int?
    var peer: PeerConfig?
    var peerHasKey = false
    /// Line of the [Peer] that first used each public key.
    var peerKeyLines: [String: Int] = [:]
    /// Lines of the single-valued keys set in the current section.
    var seen: [Key: Int] = [:]

    init(file: String) { self.file = file }

    func error(_ line: Int, _ message: String) -> ConfigError {
        ConfigError(file: file, line: line, message: message)
    }

    mutating func take(line raw: Substring, number: Int) throws(ConfigError) {
        var content = raw
        if let hash = content.firstIndex(of: "#") { content = content[..<hash] }
        let line = trimmed(content)
        if line.isEmpty { return }

        if line.hasPrefix("[") {
            guard line.hasSuffix("]"), line.count >= 2 else {
                throw error(number, "malformed section header '\(line)'; expected [Interface] or [Peer]")
            }
            try startSection(String(trimmed(line.dropFirst().dropLast())), number: number)
            return
        }

        guard let equals = line.firstIndex(of: "=") else {
            throw error(number, "missing '=' in '\(line)'; expected Key = Value")
        }
        let name = String(trimmed(line[..<equals]))
        let value = String(trimmed(line[line.index(after: equals)...]))
        guard !name.isEmpty else { throw error(number, "missing key before '='") }
        guard let key = Key.byLowercasedName[name.lowercased()] else {
            throw error(number, "unknown key '\(name)'")
        }
        switch (section, key.isPeerKey) {
        case (.none, _):
            throw error(number, "\(key.rawValue) is outside any section; put it under [Interface] or [Peer]")
        case (.interface, true):
            throw error(number, "\(key.rawValue) belongs in [Peer], not [Interface]")
        case (.peer, false):
            throw error(number, "\(key.rawValue) belongs in [Interface], not [Peer]")
        default:
            break
        }
        if key.isSingle {
            if let earlier = seen[key] {
                throw error(number, "duplicate \(key.rawValue) (already set on line \(earlier))")
            }
            seen[key] = number
        }
        if key.isPeerKey {
            try takePeerKey(key, value, number: number)
        } else {
            try takeInterfaceKey(key, name: name, value, number: number)
        }
    }

    mutating func startSection(_ name: String, number: Int) throws(ConfigError) {
        switch name.lowercased() {
        case "interface":
            if let first = interfaceLine {
                throw error(number, "second [Interface] section (the first is on line \(first))")
            }
            interfaceLine = number
            section = .interface
        case "peer":
            guard interfaceLine != nil else {
                throw error(number, "[Peer] before [Interface]; the [Interface] section must come first")
            }
            try finishPeer()
            peer = PeerConfig(publicKey: "", line: number)
            peerHasKey = false
            section = .peer
        default:
            throw error(number, "unknown section [\(name)]; expected [Interface] or [Peer]")
        }
        seen = [:]
    }

    mutating func takeInterfaceKey(_ key: Key, name: String, _ value: String, number: Int) throws(ConfigError) {
        switch key {
        case .privateKey:
            guard Base64.decodeKey(value) != nil else {
                throw error(number, "PrivateKey is not a valid base64 32-byte key")
            }
            config.privateKey = value
            privateKeyLine = number
        case .listenPort:
            guard let port = parseDecimal(value, max: 65535) else {
                throw error(number, "ListenPort must be a number from 0 to 65535, not '\(value)'")
            }
            config.listenPort = UInt16(port)
        case .address:
            for item in try listItems(value, key: key, number: number) {
                guard let address = InterfaceAddress(item) else {
                    throw error(number, "Address '\(item)' is not an IP address with an optional /prefix length")
                }
                if !address.address.isV4, firstV6AddressLine == nil { firstV6AddressLine = number }
                config.addresses.append(address)
            }
        case .mtu:
            guard let mtu = parseDecimal(value, max: 65535), mtu >= 576 else {
                throw error(number, "MTU must be a number from 576 to 65535, not '\(value)'")
            }
            config.mtu = mtu
            mtuLine = number
        default:
            config.ignoredKeys.append((line: number, key: name))
        }
    }

    mutating func takePeerKey(_ key: Key, _ value: String, number: Int) throws(ConfigError) {
        guard var peer else { return }  // section == .peer guarantees a peer
        switch key {
        case .publicKey:
            guard Base64.decodeKey(value) != nil else {
                throw error(number, "PublicKey is not a valid base64 32-byte key")
            }
            if let earlier = peerKeyLines[value] {
                throw error(number, "duplicate peer: this PublicKey is already used by the [Peer] on line \(earlier)")
            }
            peerKeyLines[value] = peer.line
            peer.publicKey = value
            peerHasKey = true
        case .presharedKey:
            guard Base64.decodeKey(value) != nil else {
                throw error(number, "PresharedKey is not a valid base64 32-byte key")
            }
            peer.presharedKey = value
        case .allowedIPs:
            for item in try listItems(value, key: key, number: number) {
                guard let prefix = IPPrefix(item) else {
                    throw error(number, "AllowedIPs '\(item)' is not an IP address with an optional /prefix length")
                }
                peer.allowedIPs.append(prefix)
            }
        case .endpoint:
            switch EndpointSpec.parse(value) {
            case .success(let endpoint): peer.endpoint = endpoint
            case .failure(let invalid): throw error(number, "Endpoint '\(value)' is invalid: \(invalid.reason)")
            }
        case .persistentKeepalive:
            if value.lowercased() == "off" {
                peer.persistentKeepalive = nil
            } else if let seconds = parseDecimal(value, max: 65535) {
                peer.persistentKeepalive = seconds == 0 ? nil : UInt16(seconds)
            } else {
                throw error(number, "PersistentKeepalive must be 'off' or a number from 0 to 65535, not '\(value)'")
            }
        default:
            break
        }
        self.peer = peer
    }

    /// Comma-separated items; an empty value is an empty list, but an empty item is an error.
    func listItems(_ value: String, key: Key, number: Int) throws(ConfigError) -> [String] {
        if value.isEmpty { return [] }
        var items: [String] = []
        for part in value.split(separator: ",", omittingEmptySubsequences: false) {
            let item = trimmed(part)
            guard !item.isEmpty else { throw error(number, "empty item in the \(key.rawValue) list '\(value)'") }
            items.append(String(item))
        }
        return items
    }

    mutating func finishPeer() throws(ConfigError) {
        guard let peer else { return }
        guard peerHasKey else { throw error(peer.line, "[Peer] has no PublicKey") }
        config.peers.append(peer)
        self.peer = nil
    }

    mutating func finish() throws(ConfigError) -> InterfaceConfig {
        guard let interfaceLine else { throw error(1, "no [Interface] section") }
        try finishPeer()
        guard privateKeyLine != nil else { throw error(interfaceLine, "[Interface] has no PrivateKey") }
        if let mtu = config.mtu, mtu < 1280, let v6Line = firstV6AddressLine {
            throw error(mtuLine ?? interfaceLine,
                        "MTU \(mtu) is below 1280, the minimum for IPv6 (IPv6 Address on line \(v6Line))")
        }
        return config
    }
}

/// Drops spaces, tabs and carriage returns at both ends.
private func trimmed(_ s: Substring) -> Substring {
    let isSpace = { (c: Character) in c == " " || c == "\t" || c == "\r" || c == "\u{0B}" || c == "\u{0C}" }
    var s = s
    while let first = s.first, isSpace(first) { s = s.dropFirst() }
    while let last = s.last, isSpace(last) { s = s.dropLast() }
    return s
}
