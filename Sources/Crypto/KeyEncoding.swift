// KeyEncoding.swift: the text forms of 32-byte keys, as `wg` and the UAPI write them.
//
// Configuration files and `wg` use standard base64 with padding (44 characters); the UAPI
// uses lowercase hex (64 characters). Parsing is strict: exact length, no whitespace, no
// trailing garbage, and libsodium rejects base64 whose unused final bits are not zero, so
// every key has exactly one accepted spelling in each form.

import CSodium

enum KeyEncoding {
    static let keyLength = 32
    static let base64Length = 44   // 4 * ceil(32 / 3)
    static let hexLength = 64

    static func base64(_ bytes: UnsafeRawBufferPointer) -> String {
        let capacity = (bytes.count + 2) / 3 * 4 + 1   // sodium_base64_ENCODED_LEN, with the NUL
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: capacity) { out in
            _ = sodium_bin2base64(out.baseAddress!, capacity, bytePointer(bytes), bytes.count,
                                  sodium_base64_VARIANT_ORIGINAL)
            return String(cString: out.baseAddress!)
        }
    }

    static func hex(_ bytes: UnsafeRawBufferPointer) -> String {
        let capacity = bytes.count * 2 + 1
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: capacity) { out in
            _ = sodium_bin2hex(out.baseAddress!, capacity, bytePointer(bytes), bytes.count)
            return String(cString: out.baseAddress!)
        }
    }

    /// Decodes exactly 32 bytes from 44 characters of padded standard base64 into `destination`.
    /// On failure returns false; `destination` may then hold partial output and must be wiped.
    static func decodeBase64(_ text: String, into destination: UnsafeMutableRawPointer) -> Bool {
        decode(text, expectedLength: base64Length) { chars, count in
            var decoded = 0
            // b64_end == nil makes libsodium fail unless every character was consumed.
            let rc = sodium_base642bin(destination.assumingMemoryBound(to: UInt8.self), keyLength,
                                       chars, count, nil, &decoded, nil,
                                       sodium_base64_VARIANT_ORIGINAL)
            return rc == 0 && decoded == keyLength
        }
    }

    /// Decodes exactly 32 bytes from 64 hex digits (either case) into `destination`.
    static func decodeHex(_ text: String, into destination: UnsafeMutableRawPointer) -> Bool {
        decode(text, expectedLength: hexLength) { chars, count in
            var decoded = 0
            let rc = sodium_hex2bin(destination.assumingMemoryBound(to: UInt8.self), keyLength,
                                    chars, count, nil, &decoded, nil)
            return rc == 0 && decoded == keyLength
        }
    }

    /// Hands the UTF-8 bytes of `text` to `body` as C characters, if there are exactly `expectedLength`.
    private static func decode(_ text: String, expectedLength: Int,
                               _ body: (UnsafePointer<CChar>, Int) -> Bool) -> Bool {
        var text = text
        return text.withUTF8 { utf8 in
            guard utf8.count == expectedLength, let base = utf8.baseAddress else { return false }
            return base.withMemoryRebound(to: CChar.self, capacity: utf8.count) { body($0, utf8.count) }
        }
    }

    private static func bytePointer(_ bytes: UnsafeRawBufferPointer) -> UnsafePointer<UInt8>? {
        bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
    }
}
