// --rate parsing: tc's units (SI and IEC, bits and BYTES per second), and every bad input an error naming it.
import Dataplane
import XCTest

final class RateTests: XCTestCase {
    func testValidRates() throws {
        let table: [(String, UInt64)] = [
            ("95mbit", 95_000_000),
            ("1gbit", 1_000_000_000),
            ("500kbit", 500_000),
            ("100000bit", 100_000),
            ("12mbps", 96_000_000),          // tc: bps is bytes per second
            ("100kbps", 800_000),
            ("1gbps", 8_000_000_000),
            ("8000bps", 64_000),
            ("1mibit", 1_048_576),
            ("100kibit", 102_400),
            ("1gibit", 1_073_741_824),
            ("1mibps", 8_388_608),
            ("8kibps", 65_536),
            ("2.5mbit", 2_500_000),
            ("0.5gbit", 500_000_000),
            (".1gbit", 100_000_000),
            ("95MBit", 95_000_000),          // tc matches units case-insensitively
            ("1TBIT", 1_000_000_000_000),
            ("64kbit", 64_000),              // the minimum
            ("1tbit", 1_000_000_000_000),    // the maximum
            ("007mbit", 7_000_000),
        ]
        for (text, bits) in table {
            XCTAssertEqual(try Rate.parse(text).bitsPerSecond, bits, text)
        }
    }

    func testBadRates() {
        let table: [(String, RateError)] = [
            ("", .empty),
            ("95", .missingUnit("95")),
            ("0", .missingUnit("0")),
            ("0mbit", .zero("0mbit")),
            ("0.0kbit", .zero("0.0kbit")),
            ("-5mbit", .negative("-5mbit")),
            ("+5mbit", .notANumber("+5mbit")),
            ("mbit", .notANumber("mbit")),
            ("fast", .notANumber("fast")),
            (".", .notANumber(".")),
            (".mbit", .notANumber(".mbit")),
            ("95mb", .unknownUnit("95mb", "mb")),
            ("95 mbit", .unknownUnit("95 mbit", " mbit")),
            ("95mbit/s", .unknownUnit("95mbit/s", "mbit/s")),
            ("95mbitx", .unknownUnit("95mbitx", "mbitx")),
            ("1e9bit", .unknownUnit("1e9bit", "e9bit")),
            ("1.2.3mbit", .unknownUnit("1.2.3mbit", ".3mbit")),
            ("50%", .percentage("50%")),
            ("63kbit", .tooLow("63kbit")),
            ("1bit", .tooLow("1bit")),
            ("0.0001bit", .tooLow("0.0001bit")),
            ("1.001tbit", .tooHigh("1.001tbit")),
            ("18446744073709551616bit", .tooHigh("18446744073709551616bit")),
            (String(repeating: "9", count: 400) + "gbit", .tooHigh(String(repeating: "9", count: 400) + "gbit")),
        ]
        for (text, expected) in table {
            XCTAssertThrowsError(try Rate.parse(text), text) { error in
                XCTAssertEqual(error as? RateError, expected, text)
                XCTAssertFalse("\(error)".isEmpty)
            }
        }
        // The messages name the input and say what to do.
        XCTAssertTrue("\(RateError.missingUnit("95"))".contains("95mbit"))
        XCTAssertTrue("\(RateError.unknownUnit("95mb", "mb"))".contains("'mb'"))
    }

    func testDescription() throws {
        XCTAssertEqual(try Rate.parse("95mbit").description, "95mbit")
        XCTAssertEqual(try Rate.parse("12mbps").description, "96mbit")
        XCTAssertEqual(try Rate.parse("1mibit").description, "1048576bit")
        XCTAssertEqual(try Rate.parse("95mbit").bytesPerSecond, 11_875_000)
    }
}
