import XCTest
@testable import Dataplane

final class IPAddressTests: XCTestCase {
    /// Text in, expected value, and the canonical text out.
    static let valid: [(String, IPAddress, String)] = [
        ("198.18.0.1", .v4(0xC612_0001), "198.18.0.1"),
        ("0.0.0.0", .v4(0), "0.0.0.0"),
        ("255.255.255.255", .v4(0xFFFF_FFFF), "255.255.255.255"),
        ("10.0.0.10", .v4(0x0A00_000A), "10.0.0.10"),
        ("::", .v6(0, 0), "::"),
        ("::1", .v6(0, 1), "::1"),
        ("1::", .v6(0x0001_0000_0000_0000, 0), "1::"),
        ("fd00::1", .v6(0xFD00_0000_0000_0000, 1), "fd00::1"),
        ("FD00::1", .v6(0xFD00_0000_0000_0000, 1), "fd00::1"),
        ("fd00:0000:0000:0000:0000:0000:0000:0001", .v6(0xFD00_0000_0000_0000, 1), "fd00::1"),
        ("2001:db8::", .v6(0x2001_0DB8_0000_0000, 0), "2001:db8::"),
        ("2001:0db8:0001:0000:0000:0ab9:C0A8:0102", .v6(0x2001_0DB8_0001_0000, 0x0000_0AB9_C0A8_0102),
         "2001:db8:1::ab9:c0a8:102"),
        // RFC 5952 4.2.2: a single zero field is not compressed.
        ("2001:db8:0:1:1:1:1:1", .v6(0x2001_0DB8_0000_0001, 0x0001_0001_0001_0001), "2001:db8:0:1:1:1:1:1"),
        ("2001:db8::1:1:1:1:1", .v6(0x2001_0DB8_0000_0001, 0x0001_0001_0001_0001), "2001:db8:0:1:1:1:1:1"),
        // RFC 5952 4.2.3: the longest run wins; on a tie the first.
        ("2001:0:0:1:0:0:0:1", .v6(0x2001_0000_0000_0001, 0x0000_0000_0000_0001), "2001:0:0:1::1"),
        ("2001:db8:0:0:1:0:0:1", .v6(0x2001_0DB8_0000_0000, 0x0001_0000_0000_0001), "2001:db8::1:0:0:1"),
        ("1:2:3:4:5:6:7:8", .v6(0x0001_0002_0003_0004, 0x0005_0006_0007_0008), "1:2:3:4:5:6:7:8"),
        ("1:2:3:4:5:6:7::", .v6(0x0001_0002_0003_0004, 0x0005_0006_0007_0000), "1:2:3:4:5:6:7:0"),
        ("::2:3:4:5:6:7:8", .v6(0x0000_0002_0003_0004, 0x0005_0006_0007_0008), "0:2:3:4:5:6:7:8"),
        ("0:0:0:0:0:0:0:0", .v6(0, 0), "::"),
        ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", .v6(.max, .max), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("fe80::abcd:0:0:1", .v6(0xFE80_0000_0000_0000, 0xABCD_0000_0000_0001), "fe80::abcd:0:0:1"),
        ("0:0:1::", .v6(0x0000_0000_0001_0000, 0), "0:0:1::"),
        // Embedded IPv4 (RFC 4291 2.2 form 3); mapped addresses print in mixed notation (RFC 5952 5).
        ("::ffff:1.2.3.4", .v6(0, 0x0000_FFFF_0102_0304), "::ffff:1.2.3.4"),
        ("::FFFF:198.18.0.1", .v6(0, 0x0000_FFFF_C612_0001), "::ffff:198.18.0.1"),
        ("0:0:0:0:0:ffff:1.2.3.4", .v6(0, 0x0000_FFFF_0102_0304), "::ffff:1.2.3.4"),
        ("::1.2.3.4", .v6(0, 0x0102_0304), "::102:304"),
        ("64:ff9b::192.0.2.33", .v6(0x0064_FF9B_0000_0000, 0xC000_0221), "64:ff9b::c000:221"),
        ("1:2:3:4:5:6:1.2.3.4", .v6(0x0001_0002_0003_0004, 0x0005_0006_0102_0304), "1:2:3:4:5:6:102:304"),
        ("1::5:6:1.2.3.4", .v6(0x0001_0000_0000_0000, 0x0005_0006_0102_0304), "1::5:6:102:304"),
        ("::ffff:0.0.0.0", .v6(0, 0x0000_FFFF_0000_0000), "::ffff:0.0.0.0"),
    ]

    static let invalid: [String] = [
        "", " ", "1", "1.2.3", "1.2.3.4.5", "256.0.0.1", "1.2.3.256", "01.2.3.4", "1.2.3.04", "1.2.3.4 ",
        " 1.2.3.4", "1..2.3", "1.2.3.", ".1.2.3", "1.2.3.-4", "+1.2.3.4", "1.2.3.4/32", "0x1.2.3.4", "1234.1.1.1",
        ":", ":::", "::::", "1:", ":1", "1:::2", "1::2::3", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8::",
        "::1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7", "12345::", "g::", "fe80::1%eth0", "fe80::1%1", "[::1]", "::1 ",
        "1:2:3:4:5:6:7:1.2.3.4", "::ffff:1.2.3", "::ffff:1.2.3.4.5", "::ffff:01.2.3.4", "::1.2.3.4:5",
        "1.2.3.4::", "::ffff:256.1.1.1", "1:2:3:4:5:6::1.2.3.4", "fd00::1/64", "example.com", "::-1",
    ]

    func testParseAndFormat() {
        for (i, (text, value, canonical)) in Self.valid.enumerated() {
            XCTAssertEqual(IPAddress(text), value, "case \(i): \(text)")
            XCTAssertEqual(value.description, canonical, "case \(i): \(text)")
            XCTAssertEqual(IPAddress(canonical), value, "case \(i): canonical text must parse back")
        }
    }

    func testRejects() {
        for (i, text) in Self.invalid.enumerated() {
            XCTAssertNil(IPAddress(text), "case \(i): \(text.debugDescription) should not parse")
        }
    }

    func testBytesRoundTrip() {
        let v4 = IPAddress("198.18.0.1")!
        XCTAssertEqual(v4.bytes, [198, 18, 0, 1])
        let v6 = IPAddress("fd00:1:2:3:4:5:6:7")!
        XCTAssertEqual(v6.bytes, [0xfd, 0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7])
        // Unaligned reads and writes.
        var buffer = [UInt8](repeating: 0, count: 20)
        buffer.withUnsafeMutableBytes { raw in
            v6.write(to: raw.baseAddress! + 3)
            XCTAssertEqual(IPAddress(v6Bytes: raw.baseAddress! + 3), v6)
            v4.write(to: raw.baseAddress! + 1)
            XCTAssertEqual(IPAddress(v4Bytes: raw.baseAddress! + 1), v4)
        }
        XCTAssertTrue(v4.isV4)
        XCTAssertFalse(v6.isV4)
    }

    func testRandomRoundTrip() {
        var rng = SeededRandom(seed: 1)
        for _ in 0..<5000 {
            // Sparse fields make zero runs of every length likely.
            var hi: UInt64 = 0
            var lo: UInt64 = 0
            for _ in 0..<4 { hi = hi << 16 | (Bool.random(using: &rng) ? 0 : UInt64.random(in: 0...0xffff, using: &rng)) }
            for _ in 0..<4 { lo = lo << 16 | (Bool.random(using: &rng) ? 0 : UInt64.random(in: 0...0xffff, using: &rng)) }
            let a = IPAddress.v6(hi, lo)
            let text = a.description
            XCTAssertEqual(IPAddress(text), a, text)
            XCTAssertFalse(text.contains(":::"), text)
            XCTAssertEqual(text, text.lowercased())
            let v4 = IPAddress.v4(UInt32.random(in: 0...UInt32.max, using: &rng))
            XCTAssertEqual(IPAddress(v4.description), v4)
        }
    }

    func testPrefixParsing() {
        let cases: [(String, String?)] = [
            ("198.19.0.0/24", "198.19.0.0/24"),
            ("198.19.0.1/24", "198.19.0.0/24"),
            ("198.19.0.1", "198.19.0.1/32"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("1.2.3.4/0", "0.0.0.0/0"),
            ("255.255.255.255/31", "255.255.255.254/31"),
            ("10.1.2.3/8", "10.0.0.0/8"),
            ("10.1.2.3/32", "10.1.2.3/32"),
            ("fd19::/64", "fd19::/64"),
            ("fd19::1", "fd19::1/128"),
            ("fd19::1/64", "fd19::/64"),
            ("fd19:1:2:3:4:5:6:7/65", "fd19:1:2:3::/65"),
            ("fd19:1:2:3:ffff:5:6:7/66", "fd19:1:2:3:c000::/66"),
            ("::/0", "::/0"),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/127", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"),
            ("::ffff:1.2.3.4/120", "::ffff:1.2.3.0/120"),
            ("1.2.3.4/33", nil),
            ("fd19::/129", nil),
            ("1.2.3.4/", nil),
            ("/24", nil),
            ("1.2.3.4/-1", nil),
            ("1.2.3.4/+8", nil),
            ("1.2.3.4/2 4", nil),
            ("1.2.3.4/24/1", nil),
            ("1.2.3.4/1000", nil),
            ("fd19::/64 ", nil),
            ("", nil),
        ]
        for (i, (text, expected)) in cases.enumerated() {
            XCTAssertEqual(IPPrefix(text)?.description, expected, "case \(i): \(text)")
        }
    }

    func testPrefixContains() {
        let p = IPPrefix("198.19.0.0/24")!
        XCTAssertTrue(p.contains(IPAddress("198.19.0.0")!))
        XCTAssertTrue(p.contains(IPAddress("198.19.0.255")!))
        XCTAssertFalse(p.contains(IPAddress("198.19.1.0")!))
        XCTAssertFalse(p.contains(IPAddress("::ffff:198.19.0.1")!))
        XCTAssertTrue(IPPrefix("0.0.0.0/0")!.contains(IPAddress("255.1.2.3")!))
        XCTAssertFalse(IPPrefix("0.0.0.0/0")!.contains(IPAddress("::")!))
        let q = IPPrefix("fd19::/65")!
        XCTAssertTrue(q.contains(IPAddress("fd19::7fff:ffff:ffff:ffff")!))
        XCTAssertFalse(q.contains(IPAddress("fd19::8000:0:0:0")!))
        XCTAssertTrue(IPPrefix("::/0")!.contains(IPAddress("ffff::")!))
        XCTAssertTrue(IPPrefix("fd19::1")!.contains(IPAddress("fd19::1")!))
        XCTAssertFalse(IPPrefix("fd19::1")!.contains(IPAddress("fd19::")!))
    }

    func testPrefixMasksAtEveryLength() {
        let v6 = IPAddress.v6(.max, .max)
        for length in 0...128 {
            let p = IPPrefix(address: v6, length: UInt8(length))
            guard case .v6(let hi, let lo) = p.address else { return XCTFail() }
            XCTAssertEqual(hi.nonzeroBitCount + lo.nonzeroBitCount, length)
            XCTAssertTrue(p.contains(v6))
        }
        for length in 0...32 {
            let p = IPPrefix(address: .v4(.max), length: UInt8(length))
            guard case .v4(let a) = p.address else { return XCTFail() }
            XCTAssertEqual(a.nonzeroBitCount, length)
            XCTAssertEqual(a.leadingZeroBitCount, length == 32 ? 0 : (length == 0 ? 32 : 0))
        }
    }

    func testOrdering() {
        let sorted = ["1.2.3.4/32", "1.2.3.0/24", "10.0.0.0/8", "::/0", "fd00::/8", "fd00::1"]
            .map { IPPrefix($0)! }.sorted().map(\.description)
        XCTAssertEqual(sorted, ["1.2.3.0/24", "1.2.3.4/32", "10.0.0.0/8", "::/0", "fd00::/8", "fd00::1/128"])
    }
}
