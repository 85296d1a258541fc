// Turns a parsed configuration file into a device configuration: keys decoded, endpoints resolved.
// Everything that can be wrong with a file is found here, before the system is touched.
import Crypto
import Dataplane
import Glibc

struct LoadedConfig {
    var device: DeviceConfiguration
    var listenPort: UInt16
    var addresses: [InterfaceAddress]
    var mtu: Int
    var routes: [IPPrefix]
    var warnings: [String]
}

enum ConfigLoader {
    static func load(path: String, threads: Int) throws -> LoadedConfig {
        guard let text = readFile(path) else {
            throw CLIError("cannot read \(path): \(String(cString: strerror(errno)))")
        }
        let file: InterfaceConfig
        do {
            file = try ConfigParser.parse(text, file: path)
        } catch {
            throw CLIError("\(error)")
        }
        var warnings: [String] = []
        for (line, key) in file.ignoredKeys {
            warnings.append("\(path):\(line): \(key) is a wg-quick setting vpnfast does not act on; ignored")
        }
        guard let privateKey = SecretKey(base64: file.privateKey) else {
            throw CLIError("\(path): PrivateKey is not a valid key")
        }
        let ownPublic = X25519.publicKey(for: privateKey)
        var peers: [DeviceConfiguration.PeerSetup] = []
        var routes: [IPPrefix] = []
        for p in file.peers {
            guard let pub = PublicKey(base64: p.publicKey) else {
                throw CLIError("\(path):\(p.line): PublicKey is not a valid key")
            }
            if pub == ownPublic {
                throw CLIError("\(path):\(p.line): this peer's PublicKey is the interface's own public key")
            }
            var psk: SecretKey?
            if let text = p.presharedKey {
                guard let k = SecretKey(base64: text) else {
                    throw CLIError("\(path):\(p.line): PresharedKey is not a valid key")
                }
                psk = k
            }
            var endpoint: Endpoint?
            if let spec = p.endpoint {
                guard let address = resolve(spec.host) else {
                    throw CLIError("\(path):\(p.line): cannot resolve Endpoint host '\(spec.host)'")
                }
                endpoint = Endpoint(address: address, port: spec.port)
            }
            peers.append(.init(publicKey: pub, presharedKey: psk, allowedIPs: p.allowedIPs, endpoint: endpoint,
                               persistentKeepalive: p.persistentKeepalive ?? 0))
            for prefix in p.allowedIPs where !routes.contains(prefix) {
                if prefix.length == 0 {
                    warnings.append("\(path):\(p.line): AllowedIPs \(prefix) accepted for this peer, but no default route is added; route it yourself (policy routing)")
                    continue
                }
                routes.append(prefix)
            }
        }
        let mtu = file.mtu ?? 1420
        var device = DeviceConfiguration(privateKey: privateKey, mtu: mtu, threads: threads, peers: peers)
        device.batchesPerDirection = 32
        return LoadedConfig(device: device, listenPort: file.listenPort ?? 0, addresses: file.addresses, mtu: mtu,
                            routes: routes, warnings: warnings)
    }

    static func readFile(_ path: String) -> String? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n > 0 { bytes.append(contentsOf: buf[0..<n]) }
            if n < buf.count { break }
            if bytes.count > 1 << 20 { return nil }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// An IP literal as is, a host name through getaddrinfo (IPv4 preferred, as wg does).
    static func resolve(_ host: String) -> IPAddress? {
        if let a = IPAddress(host) { return a }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &res) == 0, let first = res else { return nil }
        defer { freeaddrinfo(first) }
        var v6: IPAddress?
        var cur: UnsafeMutablePointer<addrinfo>? = first
        while let ai = cur {
            if ai.pointee.ai_family == AF_INET, let sa = ai.pointee.ai_addr {
                return sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    withUnsafeBytes(of: sin.pointee.sin_addr) { IPAddress(v4Bytes: $0.baseAddress!) }
                }
            }
            if ai.pointee.ai_family == AF_INET6, v6 == nil, let sa = ai.pointee.ai_addr {
                v6 = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                    withUnsafeBytes(of: sin6.pointee.sin6_addr) { IPAddress(v6Bytes: $0.baseAddress!) }
                }
            }
            cur = ai.pointee.ai_next
        }
        return v6
    }
}
