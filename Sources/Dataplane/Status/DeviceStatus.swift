// What `show` reports about a running device: a snapshot of its settings, non-zero device counters and, per peer,
// traffic, queue gauges, sojourn percentiles and drops by reason. Runs on the status server's thread; it reads
// atomics and takes each peer's lock briefly for its endpoint, so the data path is never held up.

extension Device {
    /// The status answer. `name` is the interface; `extra` adds settings only the caller knows (I/O backend,
    /// offloads), placed after the built-in ones.
    public func statusReport(name: String, extra: [StatusField] = []) -> StatusReport {
        var r = StatusReport()
        var f: [StatusField] = [
            .init("interface", name),
            .init("public_key", identity.publicKey.base64),
            .init("listen_port", String(listenPort)),
            .init("threads", String(config.threads)),
            .init("mtu", String(mtu)),
            .init("aead", config.aead.rawValue),
            .init("aqm", config.aqm ? "on" : "off"),
            .init("ecn", config.ecn ? "on" : "off"),
            .init("codel_target_ns", String(config.codelTarget)),
            .init("codel_interval_ns", String(config.codelInterval)),
            .init("dscp", config.dscp == .copy ? "copy" : "zero"),
        ]
        f += extra
        f.append(.init("peers", String(peers.count)))
        for (c, v) in counters.snapshot() where v != 0 { f.append(.init("counter.\(c.name)", String(v))) }
        r.interface = f
        r.peers = peers.map(peerStatus)
        return r
    }

    func peerStatus(_ peer: Peer) -> [StatusField] {
        var f: [StatusField] = [.init("peer", peer.publicKey.base64)]
        if let e = peer.lock.withLock({ peer.endpoint }) { f.append(.init("endpoint", "\(e)")) }
        f.append(.init("latest_handshake_unix_ns", String(peer.lastHandshakeRealtime.load(ordering: .relaxed))))
        f.append(.init("rx_bytes", String(peer.rxBytes.load(ordering: .relaxed))))
        f.append(.init("tx_bytes", String(peer.txBytes.load(ordering: .relaxed))))
        for s in PeerStat.allCases { f.append(.init(s.name, String(peer.stats[s]))) }
        // Sojourn in the send-side fq_codel, over every packet dequeued since start. The histogram is sent too
        // (bucket:count, non-zero buckets only), so a reader can take the difference of two answers for a window.
        if let h = peer.stats.sojournSnapshot() {
            let samples = h.reduce(0, +)
            f.append(.init("sojourn_samples", String(samples)))
            if let p50 = LogHistogram.percentile(0.5, counts: h), let p99 = LogHistogram.percentile(0.99, counts: h) {
                f.append(.init("sojourn_p50_ns", String(p50)))
                f.append(.init("sojourn_p99_ns", String(p99)))
            }
            let buckets = h.enumerated().filter { $0.element != 0 }.map { "\($0.offset):\($0.element)" }
            f.append(.init("sojourn_histogram", buckets.joined(separator: ",")))
        } else {
            f.append(.init("sojourn_samples", "0"))
        }
        // The same over the recent window only (one to two windows of SojournWindow.length up to now; its span
        // is given, since start when no window has turned over yet).
        if let recent = peer.stats.recentSojournSnapshot() {
            let h = recent.counts, since = recent.since
            let now = clock.now()
            f.append(.init("sojourn_recent_window_ns", String(since == 0 ? now &- startTime : now &- since)))
            f.append(.init("sojourn_recent_samples", String(h.reduce(0, +))))
            if let p50 = LogHistogram.percentile(0.5, counts: h), let p99 = LogHistogram.percentile(0.99, counts: h) {
                f.append(.init("sojourn_recent_p50_ns", String(p50)))
                f.append(.init("sojourn_recent_p99_ns", String(p99)))
            }
        } else {
            f.append(.init("sojourn_recent_samples", "0"))
        }
        return f
    }
}
