// The control socket's line protocol and the `show` output formats, as tables.
import Dataplane
import XCTest

final class StatusProtocolTests: XCTestCase {
    func testParseRequest() {
        let long = String(repeating: "x", count: StatusProtocol.maxRequestBytes + 1)
        let cases: [(input: String, expect: Result<StatusRequest, StatusProtocolError>?)] = [
            ("show\n", .success(.show)),
            ("show\r\n", .success(.show)),
            ("  show  \n", .success(.show)),
            ("show\nextra", .success(.show)),                 // one request per connection: the rest is ignored
            ("sho", nil),                                     // incomplete: read more
            ("", nil),
            ("\n", .failure(.emptyRequest)),
            ("   \n", .failure(.emptyRequest)),
            ("get=1\n", .failure(.unknownRequest("get=1"))),
            ("show wg0\n", .failure(.unknownRequest("show wg0"))),
            ("SHOW\n", .failure(.unknownRequest("SHOW"))),
            ("sh\u{1}ow\n", .failure(.notText)),
            ("shöw\n", .failure(.notText)),
            (long + "\n", .failure(.requestTooLong)),
            (long + "x", .failure(.requestTooLong)),          // no newline yet, but already too long
        ]
        for c in cases {
            XCTAssertEqual(StatusProtocol.parseRequest(Array(c.input.utf8)), c.expect, "input \(c.input.debugDescription)")
        }
    }

    func sample() -> StatusReport {
        var r = StatusReport()
        r.interface = [.init("interface", "wg0"), .init("listen_port", "51820"), .init("aqm", "on"),
                       .init("counter.rx_bytes", "1234")]
        r.peers = [
            [.init("peer", "AAAA="), .init("endpoint", "198.18.0.2:51821"), .init("rx_bytes", "10")],
            [.init("peer", "BBBB="), .init("rx_bytes", "0"), .init("note", "a=b")],
        ]
        return r
    }

    func testEncodeDecodeRoundTrip() throws {
        let text = StatusProtocol.encode(sample())
        XCTAssertEqual(text, """
            interface=wg0
            listen_port=51820
            aqm=on
            counter.rx_bytes=1234
            peer=AAAA=
            endpoint=198.18.0.2:51821
            rx_bytes=10
            peer=BBBB=
            rx_bytes=0
            note=a=b


            """)
        XCTAssertEqual(try StatusProtocol.decode(text), sample())
        // A newline inside a value cannot break the framing.
        var r = StatusReport()
        r.interface = [.init("x", "two\nlines")]
        XCTAssertEqual(try StatusProtocol.decode(StatusProtocol.encode(r)).interface, [.init("x", "two lines")])
    }

    func testDecodeErrors() {
        let cases: [(text: String, expect: StatusProtocolError)] = [
            ("error=unknown request 'x'\n\n", .remote("unknown request 'x'")),
            ("a=1\nb=2\n", .badAnswer("incomplete (no empty line at the end)")),
            ("a=1", .badAnswer("incomplete (no empty line at the end)")),
            ("", .badAnswer("incomplete (no empty line at the end)")),
            ("a=1\nnonsense\n\n", .badAnswer("line 2 is not key=value")),
            ("=1\n\n", .badAnswer("line 1 is not key=value")),
        ]
        for c in cases {
            XCTAssertThrowsError(try StatusProtocol.decode(c.text), c.text.debugDescription) { e in
                XCTAssertEqual(e as? StatusProtocolError, c.expect, c.text.debugDescription)
            }
        }
        XCTAssertEqual(StatusProtocol.encodeError(.unknownRequest("x")), "error=unknown request 'x' (known: show)\n\n")
    }

    func testJSON() {
        XCTAssertEqual(ShowFormat.json([sample()]), #"{"interfaces":[{"interface":"wg0","listen_port":51820,"aqm":"on","counters":{"rx_bytes":1234},"peers":[{"peer":"AAAA=","endpoint":"198.18.0.2:51821","rx_bytes":10},{"peer":"BBBB=","rx_bytes":0,"note":"a=b"}]}]}"#)
        let strings: [(String, String)] = [
            ("plain", #""plain""#), ("q\"b\\", #""q\"b\\""#), ("t\tn\n", #""t\tn\n""#), ("\u{1}", #""\u0001""#),
        ]
        for (input, expect) in strings { XCTAssertEqual(ShowFormat.string(input), expect) }
        XCTAssertEqual(ShowFormat.json([]), #"{"interfaces":[]}"#)
    }

    func testText() {
        var r = sample()
        r.peers[0] += [.init("latest_handshake_unix_ns", "1000000000"), .init("queue_packets", "3"),
                       .init("queue_bytes", "4200"), .init("active_flows", "2"), .init("sojourn_samples", "7"),
                       .init("sojourn_p50_ns", "1500000"), .init("sojourn_p99_ns", "120000000"),
                       .init("sojourn_recent_window_ns", "14250000000"), .init("sojourn_recent_samples", "3"),
                       .init("sojourn_recent_p50_ns", "400000"), .init("sojourn_recent_p99_ns", "2500000"),
                       .init("tx_drop_codel", "5"), .init("tx_ce_marks", "9")]
        let text = ShowFormat.text(r, nowUnixNs: 66_000_000_000)
        for expected in ["interface: wg0\n", "  listening port: 51820\n", "  counters (non-zero):\n    rx_bytes 1234\n",
                         "peer: AAAA=\n", "  endpoint: 198.18.0.2:51821\n", "  latest handshake: 1 minute, 5 seconds ago\n",
                         "  queue: 3 packets, 4.10 KiB, 2 active flows\n",
                         "  sojourn in fq_codel since start (7 packets): p50 1.5 ms, p99 120 ms\n",
                         "  sojourn in fq_codel, last 14.3 s (3 packets): p50 0.400 ms, p99 2.5 ms\n",
                         "  drops: codel 5, limit 0,", "  ecn: CE marks sent 9, received 0,",
                         "peer: BBBB=\n", "  latest handshake: never\n", "  sojourn in fq_codel: no packets yet\n"] {
            XCTAssertTrue(text.contains(expected), "missing \(expected.debugDescription) in:\n\(text)")
        }
    }
}
