import XCTest
@testable import Dataplane
import TestSupport
import CShims

final class ChecksumTests: XCTestCase {
    /// The folded sum, the slow way: one big-endian word at a time, carries folded at the end.
    private func naiveSum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt64 = 0
        var i = 0
        while i + 1 < bytes.count { sum += UInt64(bytes[i]) << 8 | UInt64(bytes[i + 1]); i += 2 }
        if i < bytes.count { sum += UInt64(bytes[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        return UInt16(sum)
    }

    func testSumMatchesNaiveAtEveryLengthAndAlignment() {
        var rng = SeededRandom(seed: 1071)
        for length in Array(0...130) + [1499, 1500, 9001, 65535] {
            for misalign in 0..<8 {
                var buffer = [UInt8](repeating: 0, count: length + misalign)
                for i in buffer.indices { buffer[i] = UInt8.random(in: 0...255, using: &rng) }
                let bytes = Array(buffer[misalign...])
                let fast = buffer.withUnsafeBytes { InternetChecksum.sum($0.baseAddress! + misalign, length) }
                XCTAssertEqual(fast, naiveSum(bytes), "length \(length) misalign \(misalign)")
            }
        }
    }

    /// The copying sum, and both code paths of each (AVX2 where the CPU has it, the SSE2 baseline): the copy is
    /// exact, nothing past it is written, and the sum is the naive one, at lengths around every loop's step.
    func testCopySumAndBaselineMatchNaive() {
        var rng = SeededRandom(seed: 1624)
        let lengths = Array(0...200) + [255, 256, 257, 1379, 1380, 1448, 1500, 9001, 65535]
        for length in lengths {
            for misalign in [0, 1, 2, 3, 5, 7] {
                let source = (0..<(length + misalign)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                let bytes = Array(source[misalign...])
                let expected = naiveSum(bytes)
                source.withUnsafeBytes { src in
                    let from = src.baseAddress! + misalign
                    XCTAssertEqual(vf_csum_baseline(from, length), expected, "baseline, length \(length)")
                    for variant in 0..<2 {
                        var out = [UInt8](repeating: 0xa5, count: length + 2 * misalign + 16)
                        let got: UInt16 = out.withUnsafeMutableBytes { dst in
                            let to = dst.baseAddress! + 8 + misalign
                            return variant == 0 ? vf_copy_csum(to, from, length) : vf_copy_csum_baseline(to, from, length)
                        }
                        XCTAssertEqual(got, expected, "copy variant \(variant), length \(length) misalign \(misalign)")
                        XCTAssertEqual(Array(out[(8 + misalign)..<(8 + misalign + length)]), bytes,
                                       "copy variant \(variant), length \(length): the bytes")
                        XCTAssertTrue(out[..<(8 + misalign)].allSatisfy { $0 == 0xa5 }
                                      && out[(8 + misalign + length)...].allSatisfy { $0 == 0xa5 },
                                      "copy variant \(variant), length \(length): nothing written outside")
                    }
                }
            }
        }
    }

    func testSumEdgeValues() {
        // (bytes, folded sum)
        let cases: [([UInt8], UInt16)] = [
            ([], 0),
            ([0x12], 0x1200),
            ([0x12, 0x34, 0x56], 0x6834),
            ([UInt8](repeating: 0xff, count: 64), 0xffff),    // carries out of every 64-bit add
            ([UInt8](repeating: 0xff, count: 65535), 0xff00),    // odd: the last byte is a high half
            ([UInt8](repeating: 0x00, count: 100), 0),
            ([0xff, 0xff, 0x00, 0x01], 0x0001),               // 0xffff + 1 wraps to 1, never to 0
        ]
        for (i, (bytes, expected)) in cases.enumerated() {
            XCTAssertEqual(bytes.withUnsafeBytes { InternetChecksum.sum($0.baseAddress ?? UnsafeRawPointer(bitPattern: 8)!, bytes.count) },
                           expected, "case \(i)")
        }
    }

    func testRFC1071Example() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        let bytes: [UInt8] = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]
        XCTAssertEqual(bytes.withUnsafeBytes { InternetChecksum.sum($0.baseAddress!, 8) }, 0xddf2)
    }

    func testPseudoHeaders() {
        var rng = SeededRandom(seed: 2460)
        for _ in 0..<200 {
            var v4 = [UInt8](repeating: 0, count: 20)
            for i in 12..<20 { v4[i] = UInt8.random(in: 0...255, using: &rng) }
            let length = Int.random(in: 0...65535, using: &rng)
            let proto = UInt8.random(in: 0...255, using: &rng)
            let naive4 = naiveSum(Array(v4[12..<20]) + [0, proto, UInt8(length >> 8), UInt8(length & 0xff)])
            XCTAssertEqual(v4.withUnsafeBytes { InternetChecksum.pseudoHeaderV4($0.baseAddress!, protocol: proto, length: length) }, naive4)

            var v6 = [UInt8](repeating: 0, count: 40)
            for i in 8..<40 { v6[i] = UInt8.random(in: 0...255, using: &rng) }
            let length6 = Int.random(in: 0...0x1_0000_0000 - 1, using: &rng)
            let lengthBytes = (0..<4).map { UInt8(truncatingIfNeeded: length6 >> (24 - 8 * $0)) }
            let naive6 = naiveSum(Array(v6[8..<40]) + lengthBytes + [0, 0, 0, proto])
            XCTAssertEqual(v6.withUnsafeBytes { InternetChecksum.pseudoHeaderV6($0.baseAddress!, protocol: proto, length: length6) }, naive6)
        }
    }

    /// (Data that is all zeros, whose only right checksum is 0xffff, cannot occur in a real header; eqn. 3 would
    /// give 0 there.)
    func testIncrementalUpdateAgreesWithRecomputing() {
        var rng = SeededRandom(seed: 1624)
        for round in 0..<2000 {
            var header = (0..<20).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if round % 7 == 0 {   // words summing to 0xffff: a checksum of 0x0000
                for i in 4..<20 { header[i] = 0 }
                header[0] = 0x45; header[1] = 0x00; header[2] = 0xba; header[3] = 0xff
            }
            header[10] = 0; header[11] = 0
            let check = ~naiveSum(header)
            header[10] = UInt8(check >> 8); header[11] = UInt8(check & 0xff)

            if round % 2 == 0 {
                let word = [0, 2, 4, 6, 8, 12, 14, 16, 18].randomElement(using: &rng)!
                let old = UInt16(header[word]) << 8 | UInt16(header[word + 1])
                let new = round % 5 == 0 ? 0 : UInt16.random(in: 0...0xffff, using: &rng)
                header[word] = UInt8(new >> 8); header[word + 1] = UInt8(new & 0xff)
                let updated = InternetChecksum.update(check, old: old, new: new)
                header[10] = UInt8(updated >> 8); header[11] = UInt8(updated & 0xff)
            } else {
                let at = [12, 16].randomElement(using: &rng)!
                let old = (0..<4).reduce(UInt32(0)) { $0 << 8 | UInt32(header[at + $1]) }
                let new = UInt32.random(in: 0...UInt32.max, using: &rng)
                for i in 0..<4 { header[at + i] = UInt8(truncatingIfNeeded: new >> (24 - 8 * UInt32(i))) }
                let updated = InternetChecksum.update(check, old: old, new: new)
                header[10] = UInt8(updated >> 8); header[11] = UInt8(updated & 0xff)
            }
            XCTAssertEqual(naiveSum(header), 0xffff, "round \(round): the updated checksum verifies")
        }
    }
}
