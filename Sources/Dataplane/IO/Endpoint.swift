// A peer's UDP address as the data path stores it: the IPv6 socket address layout, IPv4 as v4-mapped.
import CShims

public struct Endpoint: Equatable, Sendable, CustomStringConvertible {
    public var raw: vf_endpoint

    public init() { raw = vf_endpoint() }
    public init(raw: vf_endpoint) { self.raw = raw }

    public init(address: IPAddress, port: UInt16) {
        raw = vf_endpoint()
        var bytes = [UInt8](repeating: 0, count: 16)
        bytes.withUnsafeMutableBytes { address.write(to: $0.baseAddress!) }
        switch address {
        case .v4: vf_endpoint_set_v4(&raw, bytes, port)
        case .v6: vf_endpoint_set_v6(&raw, bytes, port)
        }
    }

    public var isV4: Bool { withUnsafePointer(to: raw) { vf_endpoint_is_v4($0) != 0 } }
    public var port: UInt16 { withUnsafePointer(to: raw) { vf_endpoint_port($0) } }

    public var address: IPAddress {
        withUnsafeBytes(of: raw.sin6_addr) { p in
            isV4 ? IPAddress(v4Bytes: p.baseAddress! + 12) : IPAddress(v6Bytes: p.baseAddress!)
        }
    }

    /// The bytes the cookie is bound to: address (4 or 16 bytes) followed by the big-endian port.
    public var cookieMaterial: [UInt8] {
        var out = withUnsafeBytes(of: raw.sin6_addr) { Array(isV4 ? $0[12..<16] : $0[0..<16]) }
        let p = port
        out.append(UInt8(p >> 8))
        out.append(UInt8(p & 0xff))
        return out
    }

    public var description: String {
        isV4 ? "\(address):\(port)" : "[\(address)]:\(port)"
    }

    public static func == (a: Endpoint, b: Endpoint) -> Bool {
        a.raw.sin6_port == b.raw.sin6_port
            && withUnsafeBytes(of: a.raw.sin6_addr) { pa in
                withUnsafeBytes(of: b.raw.sin6_addr) { pb in pa.elementsEqual(pb) }
            }
    }
}
