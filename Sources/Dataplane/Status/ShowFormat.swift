// How `vpnfast show` prints a status answer: text for people, JSON for scripts. Pure functions of the report.

public enum ShowFormat {
    // MARK: text

    public static func text(_ r: StatusReport, nowUnixNs: UInt64) -> String {
        var out = "interface: \(r["interface"] ?? "?")\n"
        func line(_ s: String) { out += "  \(s)\n" }
        line("public key: \(r["public_key"] ?? "?")")
        line("listening port: \(r["listen_port"] ?? "?")")
        line("threads: \(r["threads"] ?? "?"), io: \(r["io"] ?? "?"), aead: \(r["aead"] ?? "?"), offloads: \(r["offloads"] ?? "?")"
             + (r["udp_gro"].map { " (TUN \(r["tun_offloads"] ?? "?"), UDP GRO \($0))" } ?? ""))
        if r["aqm"] == "on" {
            line("queueing: fq_codel per peer, CoDel target \(ms(r["codel_target_ns"])), interval \(ms(r["codel_interval_ns"])), ECN \(r["ecn"] ?? "?"); outer DSCP \(r["dscp"] ?? "?")")
        } else {
            line("queueing: FIFO (--no-aqm); outer DSCP \(r["dscp"] ?? "?")")
        }
        let counters = r.interface.filter { $0.key.hasPrefix("counter.") }
        if !counters.isEmpty {
            line("counters (non-zero):")
            for c in counters { line("  \(c.key.dropFirst(8)) \(c.value)") }
        }
        for p in r.peers {
            let v = { (k: String) -> String in p.first { $0.key == k }?.value ?? "0" }
            let n = { (k: String) -> UInt64 in UInt64(v(k)) ?? 0 }
            out += "\npeer: \(v("peer"))\n"
            if let e = p.first(where: { $0.key == "endpoint" }) { line("endpoint: \(e.value)") }
            let hs = n("latest_handshake_unix_ns")
            line("latest handshake: " + (hs == 0 ? "never" : age(nowUnixNs >= hs ? nowUnixNs - hs : 0)))
            line("transfer: \(bytes(n("rx_bytes"))) received (\(n("rx_packets")) packets), \(bytes(n("tx_bytes"))) sent (\(n("tx_packets")) packets)")
            if r["aqm"] == "on" {
                line("queue: \(n("queue_packets")) packets, \(bytes(n("queue_bytes"))), \(n("active_flows")) active flows")
                let samples = n("sojourn_samples")
                if samples > 0 {
                    line("sojourn in fq_codel since start (\(samples) packets): p50 \(ms(v("sojourn_p50_ns"))), p99 \(ms(v("sojourn_p99_ns")))")
                } else {
                    line("sojourn in fq_codel: no packets yet")
                }
                if samples > 0 {
                    let recent = n("sojourn_recent_samples")
                    let span = "last \(seconds(v("sojourn_recent_window_ns")))"
                    line(recent > 0
                         ? "sojourn in fq_codel, \(span) (\(recent) packets): p50 \(ms(v("sojourn_recent_p50_ns"))), p99 \(ms(v("sojourn_recent_p99_ns")))"
                         : "sojourn in fq_codel, \(span): no packets")
                }
            }
            line("drops: codel \(n("tx_drop_codel")), limit \(n("tx_drop_aqm_limit")), staged overflow \(n("tx_drop_staged_overflow")), "
                 + "bad mac \(n("rx_drop_bad_mac")), replay \(n("rx_drop_replay")), ecn not-ect/ce \(n("rx_drop_ecn_not_ect_ce")), "
                 + "receive codel \(n("rx_codel_drops"))")
            line("ecn: CE marks sent \(n("tx_ce_marks")), received \(n("rx_outer_ce")), set by receive codel \(n("rx_codel_ce_marks")); "
                 + "anomalies \(n("ecn_anomaly_dangerous")) (!!!), \(n("ecn_anomaly_possibly_dangerous")) (!)")
        }
        return out
    }

    /// Nanoseconds (as text) in milliseconds with three significant-ish decimals.
    static func ms(_ ns: String?) -> String {
        guard let ns, let v = UInt64(ns) else { return "?" }
        let m = Double(v) / 1e6
        if m >= 100 { return "\(Int(m.rounded())) ms" }
        if m >= 1 { return "\(fixed(m, 1)) ms" }
        return "\(fixed(m, 3)) ms"
    }

    /// Nanoseconds (as text) in seconds with one decimal.
    static func seconds(_ ns: String?) -> String {
        guard let ns, let v = UInt64(ns) else { return "?" }
        return "\(fixed(Double(v) / 1e9, 1)) s"
    }

    static func fixed(_ x: Double, _ digits: Int) -> String {
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let n = Int((x * scale).rounded())
        let whole = n / Int(scale), frac = n % Int(scale)
        var f = String(frac)
        while f.count < digits { f = "0" + f }
        return digits == 0 ? String(whole) : "\(whole).\(f)"
    }

    static func bytes(_ b: UInt64) -> String {
        let units = ["KiB", "MiB", "GiB", "TiB"]
        if b < 1024 { return "\(b) B" }
        var x = Double(b) / 1024, u = 0
        while x >= 1024 && u < units.count - 1 { x /= 1024; u += 1 }
        return "\(fixed(x, 2)) \(units[u])"
    }

    static func age(_ ns: UInt64) -> String {
        var s = ns / 1_000_000_000
        if s == 0 { return "just now" }
        var parts: [String] = []
        for (unit, size) in [("day", UInt64(86400)), ("hour", 3600), ("minute", 60), ("second", 1)] where s >= size {
            let k = s / size
            s %= size
            parts.append("\(k) \(unit)\(k == 1 ? "" : "s")")
        }
        return parts.joined(separator: ", ") + " ago"
    }

    // MARK: JSON

    /// {"interfaces": [{ fields…, "counters": {…}, "peers": [{ fields… }] }]}. Values that are decimal integers
    /// become JSON numbers; everything else a string.
    public static func json(_ reports: [StatusReport]) -> String {
        let items = reports.map { r -> String in
            var members = r.interface.filter { !$0.key.hasPrefix("counter.") }.map(member)
            let counters = r.interface.filter { $0.key.hasPrefix("counter.") }
                .map { member(StatusField(String($0.key.dropFirst(8)), $0.value)) }
            members.append("\"counters\":{\(counters.joined(separator: ","))}")
            let peers = r.peers.map { "{" + $0.map(member).joined(separator: ",") + "}" }
            members.append("\"peers\":[\(peers.joined(separator: ","))]")
            return "{" + members.joined(separator: ",") + "}"
        }
        return "{\"interfaces\":[\(items.joined(separator: ","))]}"
    }

    /// Fields that are names or keys, always JSON strings even when they look like numbers (`--interface 100`).
    static let textFields: Set<String> = ["interface", "peer", "endpoint", "public_key", "io", "aead", "aqm"]

    static func member(_ f: StatusField) -> String {
        "\(string(f.key)):\(textFields.contains(f.key) ? string(f.value) : value(f.value))"
    }

    static func value(_ v: String) -> String {
        let digits = !v.isEmpty && v.utf8.count <= 20 && v.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
        return digits && (v == "0" || v.first != "0") ? v : string(v)
    }

    /// A JSON string literal (RFC 8259 escapes).
    public static func string(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}
