// A link rate written the way tc(8) writes one ("RATES" in the tc man page), for `vpnfast up --rate`.
//
// Units, matched case-insensitively as tc does:
//   bit                          bits per second
//   kbit mbit gbit tbit          10^3 10^6 10^9 10^12 bits per second (SI)
//   kibit mibit gibit tibit      2^10 2^20 2^30 2^40 bits per second (IEC)
//   bps                          BYTES per second (tc's meaning, not bits)
//   kbps mbps gbps tbps          10^3 .. 10^12 bytes per second
//   kibps mibps gibps tibps      2^10 .. 2^40 bytes per second
// The number may have a fractional part ("2.5mbit"). Differences from tc, each an error naming the problem:
//   - a bare number: tc reads it as bits per second, which is rarely what someone typing "100" means;
//   - a percentage: tc takes it relative to the device's speed, which a tunnel does not have;
//   - exponents, signs, spaces, anything after the unit.
// vpnfast accepts 64kbit to 1tbit: below that one full-size packet takes longer than a handshake timeout to pass.

/// A rate in bits per second.
public struct Rate: Equatable, Sendable, CustomStringConvertible {
    public let bitsPerSecond: UInt64

    public static let minimum = Rate(bitsPerSecond: 64_000)
    public static let maximum = Rate(bitsPerSecond: 1_000_000_000_000)

    public init(bitsPerSecond: UInt64) { self.bitsPerSecond = bitsPerSecond }

    /// Bytes per second, rounded down (never 0 for a parsed rate).
    public var bytesPerSecond: UInt64 { bitsPerSecond / 8 }

    public var description: String {
        let units: [(UInt64, String)] = [(1_000_000_000_000, "tbit"), (1_000_000_000, "gbit"), (1_000_000, "mbit"),
                                         (1_000, "kbit")]
        for (scale, name) in units where bitsPerSecond >= scale && bitsPerSecond % scale == 0 {
            return "\(bitsPerSecond / scale)\(name)"
        }
        return "\(bitsPerSecond)bit"
    }

    /// The unit table: name → multiplier to bits per second.
    static let units: [String: Double] = {
        var table: [String: Double] = ["bit": 1, "bps": 8]
        let si: [(String, Double)] = [("k", 1e3), ("m", 1e6), ("g", 1e9), ("t", 1e12)]
        let iec: [(String, Double)] = [("ki", 1024), ("mi", 1_048_576), ("gi", 1_073_741_824),
                                       ("ti", 1_099_511_627_776)]
        for (prefix, scale) in si + iec {
            table[prefix + "bit"] = scale
            table[prefix + "bps"] = scale * 8
        }
        return table
    }()

    /// Parses a tc-style rate such as "95mbit", "1gbit", "12mbps" (bytes), "1.5mibit".
    public static func parse(_ text: String) throws(RateError) -> Rate {
        let s = Array(text.utf8)
        if s.isEmpty { throw .empty }
        var i = 0
        var sawDigit = false
        var sawDot = false
        while i < s.count {
            let c = s[i]
            if c >= 0x30 && c <= 0x39 { sawDigit = true } else if c == 0x2e && !sawDot { sawDot = true } else { break }
            i += 1
        }
        if !sawDigit {
            if s[0] == 0x2d { throw .negative(text) }
            throw .notANumber(text)
        }
        let number = String(decoding: s[0..<i], as: UTF8.self)
        let unit = String(decoding: s[i...], as: UTF8.self).lowercased()
        if unit.isEmpty { throw .missingUnit(text) }
        if unit == "%" || unit.hasPrefix("%") { throw .percentage(text) }
        guard let scale = units[unit] else { throw .unknownUnit(text, unit) }
        guard let value = Double(number) else { throw .notANumber(text) }
        if value == 0 { throw .zero(text) }
        let bits = value * scale
        if !(bits <= Double(maximum.bitsPerSecond)) { throw .tooHigh(text) }   // also infinity
        let rounded = UInt64(bits.rounded())
        if rounded < minimum.bitsPerSecond { throw .tooLow(text) }
        return Rate(bitsPerSecond: rounded)
    }
}

public enum RateError: Error, Equatable, CustomStringConvertible {
    case empty
    case negative(String)
    case notANumber(String)
    case missingUnit(String)
    case percentage(String)
    case unknownUnit(String, String)
    case zero(String)
    case tooLow(String)
    case tooHigh(String)

    public var description: String {
        switch self {
        case .empty: return "the rate is empty; write e.g. 95mbit"
        case .negative(let t): return "'\(t)' is negative; a rate must be above zero"
        case .notANumber(let t): return "'\(t)' does not start with a number; write e.g. 95mbit"
        case .missingUnit(let t):
            return "'\(t)' has no unit (tc would read a bare number as bits/s); write e.g. \(t)bit, \(t)kbit, \(t)mbit or \(t)bps (bytes/s)"
        case .percentage(let t): return "'\(t)': a percentage of the link speed is not supported; give an absolute rate such as 95mbit"
        case .unknownUnit(let t, let u):
            return "'\(t)': unknown unit '\(u)'; use bit, kbit, mbit, gbit, tbit (or kibit, mibit, ... for 1024-based), or bps, kbps, mbps, gbps (bytes/s)"
        case .zero(let t): return "'\(t)' is zero; a rate must be above zero"
        case .tooLow(let t): return "'\(t)' is below the minimum of \(Rate.minimum)"
        case .tooHigh(let t): return "'\(t)' is above the maximum of \(Rate.maximum)"
        }
    }
}
