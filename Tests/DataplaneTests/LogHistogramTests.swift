// The sojourn histogram: bucket boundaries and percentiles, as tables.
import Dataplane
import XCTest

final class LogHistogramTests: XCTestCase {
    func testBucketOfValue() {
        let last = LogHistogram.bucketCount - 1
        let cases: [(value: UInt64, bucket: Int)] = [
            (0, 0), (1, 0), (1023, 0),            // below 1 µs
            (1024, 1), (1279, 1),                 // [1024, 1280): first quarter of 2^10
            (1280, 2), (1535, 2), (1536, 3), (1792, 4), (2047, 4),
            (2048, 5), (2559, 5), (2560, 6),      // 2^11 in quarters of 512
            (5_000_000, 1 + 12 * 4 + 0),          // 5 ms: 2^22 = 4.19 ms, quarter 0 ([4.19, 5.24) ms)
            (100_000_000, 1 + 16 * 4 + 1),        // 100 ms: 2^26 = 67.1 ms, quarter 1 ([83.9, 100.7) ms)
            ((1 << 34) - 1, last - 1),            // just under 17.2 s
            (1 << 34, last), (UInt64.max, last),  // overflow
        ]
        for c in cases {
            XCTAssertEqual(LogHistogram.bucket(of: c.value), c.bucket, "value \(c.value)")
        }
        XCTAssertEqual(LogHistogram.bucketCount, 98)
    }

    func testBoundsAgreeWithBuckets() {
        for i in 0..<LogHistogram.bucketCount {
            let lo = LogHistogram.lowerBound(i), hi = LogHistogram.upperBound(i)
            XCTAssertLessThan(lo, hi)
            XCTAssertEqual(LogHistogram.bucket(of: lo), i, "lower bound of \(i)")
            XCTAssertEqual(LogHistogram.bucket(of: hi - 1), i, "last value of \(i)")
            if i > 0 && i < LogHistogram.bucketCount - 1 {
                XCTAssertLessThanOrEqual(Double(hi - lo) / Double(lo), 0.25 + 1e-9, "relative width of \(i)")
            }
        }
    }

    func testPercentiles() {
        struct Case {
            let name: String
            let samples: [UInt64]
            let q: Double
            let expect: UInt64?
            let tolerance: Double   // relative
        }
        let ms: UInt64 = 1_000_000
        let uniform = (1...1000).map { UInt64($0) * 100_000 }          // 0.1 ms ... 100 ms
        let bimodal = Array(repeating: 1 * ms, count: 990) + Array(repeating: 50 * ms, count: 10)
        let cases: [Case] = [
            Case(name: "empty", samples: [], q: 0.5, expect: nil, tolerance: 0),
            Case(name: "one sample", samples: [5 * ms], q: 0.5, expect: 5 * ms, tolerance: 0.25),
            Case(name: "constant p99", samples: Array(repeating: 5 * ms, count: 100), q: 0.99, expect: 5 * ms, tolerance: 0.25),
            Case(name: "uniform p50", samples: uniform, q: 0.5, expect: 50 * ms, tolerance: 0.05),
            Case(name: "uniform p99", samples: uniform, q: 0.99, expect: 99 * ms, tolerance: 0.05),
            Case(name: "uniform p0", samples: uniform, q: 0, expect: 100_000, tolerance: 0.25),
            Case(name: "bimodal p50", samples: bimodal, q: 0.5, expect: 1 * ms, tolerance: 0.25),
            Case(name: "bimodal p99", samples: bimodal, q: 0.99, expect: 1 * ms, tolerance: 0.25),
            Case(name: "bimodal p99.5", samples: bimodal, q: 0.995, expect: 50 * ms, tolerance: 0.25),
            Case(name: "sub-µs", samples: [10, 20, 30], q: 0.5, expect: 500, tolerance: 1.0),
            Case(name: "overflow reports its floor", samples: [60_000 * ms], q: 0.5, expect: 1 << 34, tolerance: 0),
        ]
        for c in cases {
            var counts = [UInt64](repeating: 0, count: LogHistogram.bucketCount)
            for s in c.samples { counts[LogHistogram.bucket(of: s)] += 1 }
            let got = LogHistogram.percentile(c.q, counts: counts)
            guard let expect = c.expect else { XCTAssertNil(got, c.name); continue }
            guard let got else { XCTFail("\(c.name): nil"); continue }
            let err = abs(Double(got) - Double(expect)) / Double(expect)
            XCTAssertLessThanOrEqual(err, c.tolerance, "\(c.name): got \(got), expected about \(expect)")
        }
    }
}
