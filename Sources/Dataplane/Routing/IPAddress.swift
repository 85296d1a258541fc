// IP addresses and prefixes as plain integers.
//
// An address is held in host byte order: v4 as one UInt32, v6 as two UInt64 halves read big-endian from the
// 16 wire bytes. Text parsing follows RFC 4291 section 2.2 (all three forms, embedded IPv4 included) and is
// strict: no zone ids, no leading zeros in dotted quads (they would read as octal elsewhere), no whitespace.
// Text output follows RFC 5952: lowercase, no leading zeros, the longest run of two or more zero fields
// compressed (the first such run on a tie), and IPv4-mapped addresses (::ffff:0:0/96) in mixed notation.

public enum IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// 198.18.0.1 is `.v4(0xC612_0001)`.
    case v4(UInt32)
    /// High and low 64 bits of the address, each the big-endian reading of its 8 bytes.
    case v6(UInt64, UInt64)

    /// Parses a dotted quad or any RFC 4291 IPv6 text form. Returns nil for anything else.
    public init?(_ text: String) {
        var text = text
        let parsed: IPAddress? = text.withUTF8 { bytes in
            if let v4 = IPAddress.parseV4(bytes[...]) { return .v4(v4) }
            if let (hi, lo) = IPAddress.parseV6(bytes) { return .v6(hi, lo) }
            return nil
        }
        guard let parsed else { return nil }
        self = parsed
    }

    /// Reads 4 bytes in network order.
    public init(v4Bytes p: UnsafeRawPointer) {
        self = .v4(UInt32(bigEndian: p.loadUnaligned(as: UInt32.self)))
    }

    /// Reads 16 bytes in network order.
    public init(v6Bytes p: UnsafeRawPointer) {
        self = .v6(UInt64(bigEndian: p.loadUnaligned(as: UInt64.self)),
                   UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
    }

    /// Writes the address in network order: 4 bytes for v4, 16 for v6.
    public func write(to p: UnsafeMutableRawPointer) {
        switch self {
        case .v4(let a):
            p.storeBytes(of: a.bigEndian, as: UInt32.self)
        case .v6(let hi, let lo):
            p.storeBytes(of: hi.bigEndian, as: UInt64.self)
            p.storeBytes(of: lo.bigEndian, toByteOffset: 8, as: UInt64.self)
        }
    }

    public var isV4: Bool {
        if case .v4 = self { return true }
        return false
    }

    /// 32 or 128.
    public var bitWidth: Int { isV4 ? 32 : 128 }

    /// The address as network-order bytes (4 or 16).
    public var bytes: [UInt8] {
        let n = isV4 ? 4 : 16
        return [UInt8](unsafeUninitializedCapacity: n) { buffer, count in
            write(to: UnsafeMutableRawPointer(buffer.baseAddress!))
            count = n
        }
    }

    public var description: String {
        switch self {
        case .v4(let a):
            return IPAddress.formatV4(a)
        case .v6(let hi, let lo):
            return IPAddress.formatV6(hi, lo)
        }
    }
}

// MARK: - Parsing

extension IPAddress {
    /// Exactly four decimal fields of 0...255, separated by dots, without leading zeros.
    static func parseV4(_ s: Slice<UnsafeBufferPointer<UInt8>>) -> UInt32? {
        var value: UInt32 = 0
        var fields = 0
        var i = s.startIndex
        while true {
            guard i < s.endIndex, isDigit(s[i]) else { return nil }
            if s[i] == UInt8(ascii: "0"), i + 1 < s.endIndex, isDigit(s[i + 1]) { return nil }
            var field: UInt32 = 0
            var digits = 0
            while i < s.endIndex, isDigit(s[i]) {
                field = field * 10 + UInt32(s[i] &- UInt8(ascii: "0"))
                digits += 1
                i += 1
                if digits > 3 { return nil }
            }
            guard field <= 255 else { return nil }
            value = value << 8 | field
            fields += 1
            if fields == 4 { return i == s.endIndex ? value : nil }
            guard i < s.endIndex, s[i] == UInt8(ascii: ".") else { return nil }
            i += 1
        }
    }

    /// RFC 4291 section 2.2: eight hex fields, at most one "::" standing for one or more zero fields, and
    /// optionally a dotted quad in place of the last two fields.
    static func parseV6(_ s: UnsafeBufferPointer<UInt8>) -> (UInt64, UInt64)? {
        let n = s.count
        var words = [UInt16](repeating: 0, count: 8)
        var count = 0
        var gap: Int? = nil  // index in `words` where "::" stands
        var i = 0

        func append(_ f: UInt16) {
            words[count] = f
            count += 1
        }

        if n >= 2, s[0] == UInt8(ascii: ":"), s[1] == UInt8(ascii: ":") {
            gap = 0
            i = 2
        }
        while i < n {
            if count == 8 { return nil }
            let start = i
            var field: UInt32 = 0
            while i < n, let d = hexValue(s[i]) {
                field = field << 4 | UInt32(d)
                i += 1
                if i - start > 4 { break }
            }
            if i < n, s[i] == UInt8(ascii: ".") {
                // The rest of the text is an embedded dotted quad filling the last two fields.
                guard count <= 6, let v4 = parseV4(s[start..<n]) else { return nil }
                append(UInt16(truncatingIfNeeded: v4 >> 16))
                append(UInt16(truncatingIfNeeded: v4))
                i = n
                break
            }
            let digits = i - start
            guard digits >= 1, digits <= 4 else { return nil }
            append(UInt16(field))
            if i == n { break }
            guard s[i] == UInt8(ascii: ":") else { return nil }
            i += 1
            if i < n, s[i] == UInt8(ascii: ":") {
                guard gap == nil else { return nil }
                gap = count
                i += 1
            } else if i == n {
                return nil  // a single trailing colon
            }
        }

        if let gap {
            // "::" must stand for at least one field.
            guard count <= 7 else { return nil }
            let tail = count - gap
            let moved = Array(words[gap..<count])
            for k in gap..<8 { words[k] = 0 }
            for k in 0..<tail { words[8 - tail + k] = moved[k] }
        } else {
            guard count == 8 else { return nil }
        }
        var hi: UInt64 = 0
        var lo: UInt64 = 0
        for k in 0..<4 { hi = hi << 16 | UInt64(words[k]) }
        for k in 4..<8 { lo = lo << 16 | UInt64(words[k]) }
        return (hi, lo)
    }

    @inline(__always)
    static func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    @inline(__always)
    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

// MARK: - Formatting

extension IPAddress {
    static func formatV4(_ a: UInt32) -> String {
        "\(a >> 24).\((a >> 16) & 0xff).\((a >> 8) & 0xff).\(a & 0xff)"
    }

    static func formatV6(_ hi: UInt64, _ lo: UInt64) -> String {
        if hi == 0, lo >> 32 == 0xffff {
            return "::ffff:" + formatV4(UInt32(truncatingIfNeeded: lo))
        }
        var words = [UInt16](repeating: 0, count: 8)
        for k in 0..<4 {
            words[k] = UInt16(truncatingIfNeeded: hi >> (48 - 16 * k))
            words[4 + k] = UInt16(truncatingIfNeeded: lo >> (48 - 16 * k))
        }
        // The longest run of zero fields, the first one on a tie; a lone zero field is not compressed.
        var bestStart = -1
        var bestLength = 1
        var k = 0
        while k < 8 {
            if words[k] == 0 {
                var end = k
                while end < 8, words[end] == 0 { end += 1 }
                if end - k > bestLength {
                    bestStart = k
                    bestLength = end - k
                }
                k = end
            } else {
                k += 1
            }
        }
        var out = ""
        k = 0
        while k < 8 {
            if k == bestStart {
                out += "::"
                k += bestLength
                continue
            }
            if !out.isEmpty, !out.hasSuffix(":") { out += ":" }
            out += String(words[k], radix: 16)
            k += 1
        }
        return out
    }
}

// MARK: - Prefixes

/// An address block: the address with every bit past `length` cleared.
public struct IPPrefix: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let address: IPAddress
    public let length: UInt8

    /// "198.19.0.0/24", "fd19::/64"; a bare address is a /32 or /128. Host bits are cleared, as wg does.
    public init?(_ text: String) {
        guard let (address, length) = parseAddressAndLength(text) else { return nil }
        self.init(address: address, length: length)
    }

    /// Clears the host bits of `address`. `length` must fit the family (32 or 128).
    public init(address: IPAddress, length: UInt8) {
        precondition(Int(length) <= address.bitWidth, "prefix length \(length) too long for \(address)")
        self.address = IPPrefix.masked(address, length)
        self.length = length
    }

    public func contains(_ a: IPAddress) -> Bool {
        switch (address, a) {
        case (.v4(let p), .v4(let x)):
            return x & IPPrefix.maskV4(length) == p
        case (.v6(let ph, let pl), .v6(let xh, let xl)):
            let (mh, ml) = IPPrefix.maskV6(length)
            return xh & mh == ph && xl & ml == pl
        default:
            return false
        }
    }

    public var description: String { "\(address)/\(length)" }

    public static func < (a: IPPrefix, b: IPPrefix) -> Bool {
        a.address != b.address ? a.address < b.address : a.length < b.length
    }

    /// The network mask for a v4 prefix length (0...32).
    @inline(__always)
    static func maskV4(_ length: UInt8) -> UInt32 {
        length == 0 ? 0 : UInt32.max << (32 - UInt32(length))
    }

    /// High and low halves of the network mask for a v6 prefix length (0...128).
    @inline(__always)
    static func maskV6(_ length: UInt8) -> (UInt64, UInt64) {
        if length <= 64 {
            return (length == 0 ? 0 : UInt64.max << (64 - UInt64(length)), 0)
        }
        return (UInt64.max, UInt64.max << (128 - UInt64(length)))
    }

    static func masked(_ a: IPAddress, _ length: UInt8) -> IPAddress {
        switch a {
        case .v4(let x):
            return .v4(x & maskV4(length))
        case .v6(let hi, let lo):
            let (mh, ml) = maskV6(length)
            return .v6(hi & mh, lo & ml)
        }
    }
}

/// Splits "ADDRESS[/LENGTH]" and checks the length against the family; a missing length means a host route.
func parseAddressAndLength(_ text: String) -> (IPAddress, UInt8)? {
    let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
    guard let address = IPAddress(String(parts[0])) else { return nil }
    guard parts.count == 2 else { return (address, UInt8(address.bitWidth)) }
    let digits = parts[1].utf8
    guard !digits.isEmpty, digits.count <= 3, digits.allSatisfy(IPAddress.isDigit) else { return nil }
    let length = digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
    guard length <= address.bitWidth else { return nil }
    return (address, UInt8(length))
}
