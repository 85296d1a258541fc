// A fixed log-scale histogram of durations in nanoseconds, for sojourn-time percentiles.
//
// Bucket 0 holds values below 1 µs (2^10 ns). Each power of two from 2^10 to 2^34 ns (about 17 s) is split into
// four sub-buckets by the two bits below the leading one, so a bucket spans at most a quarter of its lower bound
// (relative width ≤ 25 %). The last bucket holds everything from 2^34 ns up. Finding a bucket is a count of
// leading zeros and two shifts: cheap enough to run per dequeued packet.
//
// The layout is pure arithmetic on bucket indices; storage belongs to the caller (a UInt64 per bucket), so the
// same functions serve the live, atomically updated counts and a copied snapshot.

public enum LogHistogram {
    /// Values below 2^minShift ns land in bucket 0.
    public static let minShift = 10
    /// Powers of two covered with sub-buckets: 2^minShift ..< 2^(minShift + octaves).
    public static let octaves = 24
    /// Sub-buckets per power of two (a power of two itself).
    public static let subBuckets = 4
    static let subBits = 2
    /// Total buckets: the underflow bucket, octaves × subBuckets, the overflow bucket.
    public static let bucketCount = 1 + octaves * subBuckets + 1

    /// The bucket of `value` (nanoseconds).
    @inline(__always)
    public static func bucket(of value: UInt64) -> Int {
        if value < (1 << UInt64(minShift)) { return 0 }
        let msb = 63 - value.leadingZeroBitCount
        let octave = msb - minShift
        if octave >= octaves { return bucketCount - 1 }
        let sub = Int((value >> UInt64(msb - subBits)) & UInt64(subBuckets - 1))
        return 1 + octave * subBuckets + sub
    }

    /// The smallest value in bucket `i`.
    public static func lowerBound(_ i: Int) -> UInt64 {
        precondition((0..<bucketCount).contains(i), "histogram: bucket out of range")
        if i == 0 { return 0 }
        if i == bucketCount - 1 { return 1 << UInt64(minShift + octaves) }
        let octave = (i - 1) / subBuckets, sub = (i - 1) % subBuckets
        let base = UInt64(1) << UInt64(minShift + octave)
        return base + UInt64(sub) * (base >> UInt64(subBits))
    }

    /// One past the largest value in bucket `i` (UInt64.max for the overflow bucket).
    public static func upperBound(_ i: Int) -> UInt64 {
        i == bucketCount - 1 ? .max : lowerBound(i + 1)
    }

    /// The value below which a fraction `q` (0...1) of the counted samples lie, interpolating linearly inside the
    /// bucket that holds that rank; nil when nothing was counted. A rank in the overflow bucket reports its lower
    /// bound (the histogram cannot say how far above it lies).
    public static func percentile(_ q: Double, counts: UnsafePointer<UInt64>) -> UInt64? {
        var total: UInt64 = 0
        for i in 0..<bucketCount { total &+= counts[i] }
        if total == 0 { return nil }
        // The rank of the sample sought, 1...total.
        let rank = max(1, min(total, UInt64((q * Double(total)).rounded(.up))))
        var below: UInt64 = 0
        for i in 0..<bucketCount {
            let c = counts[i]
            if c == 0 { continue }
            if below + c >= rank {
                let lo = lowerBound(i)
                if i == bucketCount - 1 { return lo }
                let width = Double(upperBound(i) - lo)
                let fraction = Double(rank - below) / Double(c)
                return lo + UInt64(width * fraction)
            }
            below += c
        }
        return nil
    }

    /// `percentile` over an array of bucket counts (snapshots, tests).
    public static func percentile(_ q: Double, counts: [UInt64]) -> UInt64? {
        precondition(counts.count == bucketCount, "histogram: wrong number of buckets")
        return counts.withUnsafeBufferPointer { percentile(q, counts: $0.baseAddress!) }
    }
}
