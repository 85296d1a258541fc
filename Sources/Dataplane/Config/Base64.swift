// Strict base64 (RFC 4648 section 4, the standard alphabet) for keys in configuration files.
//
// The config parser needs to know that a key is well formed without depending on the crypto module, so this
// decoder is small and self-contained. It accepts exactly one spelling of each byte string: padding is
// required, nothing but the 64 letters and trailing '=' is allowed, and the bits a final letter carries past
// the data must be zero (wg refuses keys whose last letter has them set).

enum Base64 {
    /// Length of a WireGuard key.
    static let keyBytes = 32
    /// Length of its base64 text: 43 letters and one '='.
    static let keyCharacters = 44

    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// The 6-bit value of each byte, or 0xff for bytes outside the alphabet.
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xff, count: 256)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = UInt8(i) }
        return table
    }()

    /// Decodes canonical padded base64; nil for anything else, including the empty string.
    static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard !chars.isEmpty, chars.count % 4 == 0 else { return nil }
        var padding = 0
        if chars[chars.count - 1] == UInt8(ascii: "=") { padding += 1 }
        if chars[chars.count - 2] == UInt8(ascii: "=") { padding += 1 }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 4 * 3)
        var group: UInt32 = 0
        for (i, c) in chars.enumerated() {
            let value: UInt32
            if i >= chars.count - padding {
                value = 0
            } else {
                let v = values[Int(c)]
                guard v != 0xff else { return nil }
                value = UInt32(v)
            }
            group = group << 6 | value
            if i % 4 == 3 {
                out.append(UInt8(truncatingIfNeeded: group >> 16))
                out.append(UInt8(truncatingIfNeeded: group >> 8))
                out.append(UInt8(truncatingIfNeeded: group))
                group = 0
            }
        }
        // The bytes that padding stands for must be zero: otherwise the last letter had bits set past the data.
        for _ in 0..<padding {
            guard out.removeLast() == 0 else { return nil }
        }
        return out
    }

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let n = min(3, bytes.count - i)
            var group: UInt32 = 0
            for k in 0..<3 { group = group << 8 | (k < n ? UInt32(bytes[i + k]) : 0) }
            for k in 0..<4 {
                out.append(k <= n ? alphabet[Int(group >> (18 - 6 * UInt32(k)) & 63)] : UInt8(ascii: "="))
            }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The 32 bytes of a key written as 44 characters of base64, or nil.
    static func decodeKey(_ text: String) -> [UInt8]? {
        guard text.utf8.count == keyCharacters, let bytes = decode(text), bytes.count == keyBytes else { return nil }
        return bytes
    }
}
