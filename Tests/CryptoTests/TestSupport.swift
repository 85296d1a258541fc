// Helpers shared by the Crypto tests: hex literals for vectors, independent of the module's
// own encoders so a bug there cannot hide a bug here.

import Foundation

/// Bytes from a hex string; whitespace is ignored so long vectors can be split across lines.
func hex(_ text: String) -> [UInt8] {
    let digits = text.unicodeScalars.filter { !CharacterSet.whitespacesAndNewlines.contains($0) }
    precondition(digits.count % 2 == 0, "odd hex length in a test vector")
    var bytes: [UInt8] = []
    bytes.reserveCapacity(digits.count / 2)
    var iterator = digits.makeIterator()
    while let high = iterator.next(), let low = iterator.next() {
        bytes.append(UInt8(String(high), radix: 16)! << 4 | UInt8(String(low), radix: 16)!)
    }
    return bytes
}

func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}

/// start, start+1, ... (mod 256): the input pattern of many reference vectors.
func sequence(_ count: Int, from start: UInt8 = 0) -> [UInt8] {
    (0..<count).map { start &+ UInt8(truncatingIfNeeded: $0) }
}
