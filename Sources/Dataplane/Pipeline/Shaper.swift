// `--rate`: the device's egress shaper, so that a gateway in front of a slower WAN owns the bottleneck queue.
//
// It counts what the wire carries: outer IPv4 20 / IPv6 40 + UDP 8 + transport header 16 + padded payload + tag 16.
// With fq_codel (SendQueue.swift) the tun-reader asks before each dequeue whether one full-size packet fits; if
// not, packets stay in the peers' fq_codel queues, where CoDel manages them, and the reader's TUN read times out
// when the next packet's worth of tokens has arrived. With --no-aqm (Send.swift) the reader reads a batch only
// once the bucket is out of debt and charges the whole batch, so the queue forms in the TUN's own queue, as it
// would ahead of any plain FIFO.
//
// Bucket depth: the larger of 3 ms at the rate and two full-size outer packets. The reader wakes at millisecond
// granularity (the TUN read timeout), so the bucket must hold more than 1 ms of tokens or a late wake-up would cost
// rate; 3 ms leaves room for a wake-up up to 2 ms late on a busy machine. A bottleneck just above the rate then
// sees at most 3 ms worth of burst, which adds at most ~3 ms of queueing there.
//
// Handshakes, cookie replies and keepalives from the control thread bypass the shaper: they are at most a few
// hundred bytes per peer per several seconds.
import CShims

/// The shaper state. Used only by the tun-reader thread.
final class EgressShaper: @unchecked Sendable {  // owned and mutated by the tun-reader thread alone
    var bucket: TokenBucket
    /// Outer bytes of the largest packet the device sends (IPv6 outer header, MTU-sized inner packet).
    let maxPacketBytes: UInt64

    static let depthTime: UInt64 = 3_000_000

    init(rate: Rate, mtu: Int, now: UInt64) {
        maxPacketBytes = UInt64(EgressShaper.outerOverhead(ipv4: false) + (mtu + 15) / 16 * 16)
        let atRate = rate.bytesPerSecond * EgressShaper.depthTime / 1_000_000_000
        bucket = TokenBucket(bytesPerSecond: rate.bytesPerSecond, depthBytes: max(atRate, 2 * maxPacketBytes),
                             now: now)
    }

    /// Outer IP + UDP headers and the WireGuard transport header and tag around a padded payload.
    @inline(__always) static func outerOverhead(ipv4: Bool) -> Int {
        (ipv4 ? 20 : 40) + 8 + MessageLayout.transportHeaderSize + MessageLayout.tagSize
    }

    /// Outer bytes of a transport message of `messageLength` bytes (header + padded payload + tag) to `endpoint`.
    @inline(__always) static func outerBytes(messageLength: UInt32, endpoint: Endpoint) -> UInt64 {
        UInt64(messageLength) + (endpoint.isV4 ? 28 : 48)
    }

    /// Whether a full-size packet may be dequeued now.
    @inline(__always) func ready(now: UInt64) -> Bool { bucket.wait(forBytes: maxPacketBytes, now: now) == 0 }

    /// Milliseconds until a full-size packet may go (0: now), rounded up, for a TUN read timeout.
    func waitMilliseconds(now: UInt64) -> Int32 {
        let ns = bucket.wait(forBytes: maxPacketBytes, now: now)
        if ns == 0 { return 0 }
        return Int32(min((ns + 999_999) / 1_000_000, 1000))
    }

    @inline(__always) func consume(_ bytes: UInt64, now: UInt64) { bucket.consume(bytes: bytes, now: now) }
}

extension Device {
    /// --no-aqm: sleeps (without reading the TUN) until the bucket has room for a full-size packet again.
    func waitOutDebt(_ shaper: EgressShaper) {
        while isRunning {
            let ns = shaper.bucket.wait(forBytes: shaper.maxPacketBytes, now: clock.now())
            if ns == 0 { return }
            // To the nanosecond, not the millisecond: a batch is repaid in a few ms at WAN rates, so rounding the
            // sleep up would cost several percent of the rate. Capped so stop() is noticed.
            vf_sleep_ns(min(ns, 100_000_000))
        }
    }

    /// --no-aqm: charges a routed batch's outer bytes. The whole batch is charged at once (a super-packet's
    /// segments must be read together), so the bucket may go into debt by up to a batch; `waitOutDebt` then holds
    /// the next read back until it is repaid.
    func charge(_ shaper: EgressShaper, _ batch: PacketBatch) {
        var bytes: UInt64 = 0
        for i in 0..<batch.count where batch.keypairSlot[i] != PacketBatch.dropped {
            bytes += EgressShaper.outerBytes(messageLength: batch.lengths[i], endpoint: batch.endpoints[i])
        }
        shaper.consume(bytes, now: clock.now())
    }
}
