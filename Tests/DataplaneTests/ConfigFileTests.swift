import XCTest
@testable import Dataplane

private let k1 = "JSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJQE="
private let k2 = "SkpKSkpKSkpKSkpKSkpKSkpKSkpKSkpKSkpKSkpKSgI="
private let k3 = "b29vb29vb29vb29vb29vb29vb29vb29vb29vb29vbwM="
private let k4 = "lJSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlAQ="
private let k5 = "ubm5ubm5ubm5ubm5ubm5ubm5ubm5ubm5ubm5ubm5uQU="

/// A minimal valid file, to which a case appends lines.
private let head = "[Interface]\nPrivateKey = \(k1)\n"

final class ConfigFileTests: XCTestCase {
    // MARK: Base64

    func testBase64KnownAnswers() {
        // RFC 4648 section 10.
        let vectors = [("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="),
                       ("foobar", "Zm9vYmFy")]
        for (plain, encoded) in vectors {
            XCTAssertEqual(Base64.encode(Array(plain.utf8)), encoded)
            XCTAssertEqual(Base64.decode(encoded), Array(plain.utf8), encoded)
        }
        XCTAssertEqual(Base64.encode([]), "")
        XCTAssertEqual(Base64.decodeKey(k1), [UInt8](repeating: 0x25, count: 31) + [1])
        var rng = SeededRandom(seed: 32)
        for _ in 0..<200 {
            let key = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
            XCTAssertEqual(Base64.decodeKey(Base64.encode(key)), key)
        }
    }

    func testBase64Rejects() {
        let bad = ["", "Zg=", "Zg", "Zh==", "Zm9=", "Zm8", "Zm-v", "Zm_v", "Zm9v\n", " Zm9v", "=Zm9", "Z===", "====",
                   "Zm=v", "Zg==Zg==", "Zm9vY===", "Zm9v Zm9v"]
        for text in bad { XCTAssertNil(Base64.decode(text), text.debugDescription) }
        // Keys: exactly 44 characters decoding to 32 bytes, last letter without stray bits.
        let badKeys = [
            "JSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJQF=",  // stray bit in the last letter
            "JSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJQE",   // no padding
            "JSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJQ==",  // 31 bytes
            "JSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUl",  // 33 bytes
            "JSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJQE=JSUl",
            "JSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJ*E=",
            "JSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJQE-",
        ]
        for key in badKeys { XCTAssertNil(Base64.decodeKey(key), key) }
    }

    // MARK: Endpoints and addresses

    func testEndpoints() {
        let good: [(String, String, UInt16)] = [
            ("198.18.0.2:51820", "198.18.0.2", 51820),
            ("[fd18::2]:51820", "fd18::2", 51820),
            ("[::ffff:1.2.3.4]:1", "::ffff:1.2.3.4", 1),
            ("example.com:51820", "example.com", 51820),
            ("vpn-1.example_x.net:65535", "vpn-1.example_x.net", 65535),
            ("localhost:7", "localhost", 7),
        ]
        for (text, host, port) in good {
            XCTAssertEqual(EndpointSpec(text), EndpointSpec(host: host, port: port), text)
        }
        XCTAssertEqual(EndpointSpec("[fd18::2]:51820")?.description, "[fd18::2]:51820")
        XCTAssertEqual(EndpointSpec("[fd18::2]:51820")?.address, IPAddress("fd18::2"))
        XCTAssertNil(EndpointSpec("example.com:1")?.address)

        let bad = ["198.18.0.2", "198.18.0.2:", "198.18.0.2:0", "198.18.0.2:65536", "198.18.0.2:-1", ":51820",
                   "fd18::2:51820", "[fd18::2]", "[fd18::2]51820", "[fd18::2:51820", "[]:51820", "[198.18.0.2]:1",
                   "[example.com]:1", "[fe80::1%eth0]:1", "exa mple.com:1", "example.com:51 820", "host/x:1", "",
                   "198.18.0.2:+1", "198.18.0.2:99999999999"]
        for text in bad { XCTAssertNil(EndpointSpec(text), text) }
    }

    func testInterfaceAddressKeepsHostBits() {
        let a = InterfaceAddress("198.19.0.1/24")!
        XCTAssertEqual(a.address, IPAddress("198.19.0.1"))
        XCTAssertEqual(a.length, 24)
        XCTAssertEqual(a.prefix, IPPrefix("198.19.0.0/24"))
        XCTAssertEqual(a.description, "198.19.0.1/24")
        XCTAssertEqual(InterfaceAddress("fd19::1")?.description, "fd19::1/128")
        XCTAssertEqual(InterfaceAddress("198.19.0.1")?.length, 32)
        XCTAssertNil(InterfaceAddress("198.19.0.1/33"))
        XCTAssertNil(InterfaceAddress("fd19::1/129"))
    }

    // MARK: Files that parse

    /// (number, text, check)
    let accepted: [(Int, String, (InterfaceConfig) -> Void)] = [
        (1, head, { c in
            XCTAssertEqual(c.privateKey, k1)
            XCTAssertNil(c.listenPort)
            XCTAssertTrue(c.addresses.isEmpty && c.peers.isEmpty && c.ignoredKeys.isEmpty)
            XCTAssertNil(c.mtu)
        }),
        (2, "[interface]\nprivatekey=\(k1)\nLISTENPORT=0\nmtu=576", { c in
            XCTAssertEqual(c.listenPort, 0)
            XCTAssertEqual(c.mtu, 576)
        }),
        (3, "  [ Interface ]  # comment\n\tPrivateKey\t=\t\(k1)   #trailing\n#only a comment\n\n   \nListenPort = 65535",
         { c in XCTAssertEqual(c.listenPort, 65535) }),
        (4, head + "Address = 198.19.0.1/24,fd19::1/64 , 10.0.0.1\nAddress=10.1.0.1/16\nMTU = 1280", { c in
            XCTAssertEqual(c.addresses.map(\.description), ["198.19.0.1/24", "fd19::1/64", "10.0.0.1/32", "10.1.0.1/16"])
            XCTAssertEqual(c.mtu, 1280)
        }),
        (5, head + "MTU = 1000\nAddress = 10.0.0.1/8", { c in XCTAssertEqual(c.mtu, 1000) }),
        (6, head + "DNS = 1.1.1.1, 2606:4700::1111\nTable = off\nPostUp = echo up\nPostUp = echo again\nPreUp = x\n"
            + "PreDown = y\nPostDown = z\nSaveConfig = true\nFwMark = 0x1234", { c in
            XCTAssertEqual(c.ignoredKeys.map(\.key),
                           ["DNS", "Table", "PostUp", "PostUp", "PreUp", "PreDown", "PostDown", "SaveConfig", "FwMark"])
            XCTAssertEqual(c.ignoredKeys.map(\.line), Array(3...11))
        }),
        (7, head + "[Peer]\nPublicKey = \(k2)\n[Peer]\nPublicKey = \(k3)\nAllowedIPs =\n", { c in
            XCTAssertEqual(c.peers.map(\.publicKey), [k2, k3])
            XCTAssertEqual(c.peers.map(\.line), [3, 5])
            XCTAssertTrue(c.peers[1].allowedIPs.isEmpty)
        }),
        (8, head + "[Peer]\nPublicKey = \(k2)\nAllowedIPs = 10.0.0.1/8, fd00::1/64\nallowedips=0.0.0.0/0", { c in
            XCTAssertEqual(c.peers[0].allowedIPs.map(\.description), ["10.0.0.0/8", "fd00::/64", "0.0.0.0/0"])
        }),
        (9, head + "[Peer]\nPublicKey = \(k2)\nPersistentKeepalive = off\n[Peer]\nPublicKey = \(k3)\n"
            + "PersistentKeepalive = 0\n[Peer]\nPublicKey = \(k4)\nPersistentKeepalive = 25\n[Peer]\n"
            + "PublicKey = \(k5)\nPersistentKeepalive = OFF", { c in
            XCTAssertEqual(c.peers.map(\.persistentKeepalive), [nil, nil, 25, nil])
        }),
        (10, head + "[Peer]\r\nPublicKey = \(k2)\r\nEndpoint = [fd18::2]:51820\r\nPresharedKey = \(k3)\r\n", { c in
            XCTAssertEqual(c.peers[0].endpoint, EndpointSpec(host: "fd18::2", port: 51820))
            XCTAssertEqual(c.peers[0].presharedKey, k3)
        }),
        (11, head + "[Peer]\nPublicKey=\(k2)\nEndpoint=vpn.example.com:443", { c in
            XCTAssertEqual(c.peers[0].endpoint, EndpointSpec(host: "vpn.example.com", port: 443))
            XCTAssertNil(c.peers[0].presharedKey)
        }),
        (12, "\n\n[Interface]\nPrivateKey = \(k1)\nAddress = fd00::1/64\nMTU = 1280", { c in
            XCTAssertEqual(c.mtu, 1280)
        }),
    ]

    func testAccepted() {
        for (number, text, check) in accepted {
            do {
                check(try ConfigParser.parse(text, file: "case\(number).conf"))
            } catch {
                XCTFail("case \(number): \(error)")
            }
        }
    }

    // MARK: Files that do not

    /// (number, text, line of the error, part of the message)
    static let rejected: [(Int, String, Int, String)] = [
        (1, "", 1, "no [Interface] section"),
        (2, "# nothing but a comment\n", 1, "no [Interface] section"),
        (3, "[Interface]\nListenPort = 1", 1, "[Interface] has no PrivateKey"),
        (4, "PrivateKey = \(k1)\n[Interface]", 1, "PrivateKey is outside any section"),
        (5, "[Peer]\nPublicKey = \(k2)\n[Interface]\nPrivateKey = \(k1)", 1, "[Peer] before [Interface]"),
        (6, head + "[Interface]", 3, "second [Interface] section (the first is on line 1)"),
        (7, head + "[Peers]", 3, "unknown section [Peers]"),
        (8, head + "[Interface", 3, "malformed section header '[Interface'"),
        (9, head + "ListenPort 51820", 3, "missing '=' in 'ListenPort 51820'"),
        (10, head + "= 5", 3, "missing key before '='"),
        (11, head + "ListenPrt = 1", 3, "unknown key 'ListenPrt'"),
        (12, head + "Listen Port = 1", 3, "unknown key 'Listen Port'"),
        (13, head + "PublicKey = \(k2)", 3, "PublicKey belongs in [Peer], not [Interface]"),
        (14, head + "[Peer]\nPublicKey = \(k2)\nListenPort = 1", 5, "ListenPort belongs in [Interface], not [Peer]"),
        (15, head + "[Peer]\nPublicKey = \(k2)\nDNS = 1.1.1.1", 5, "DNS belongs in [Interface]"),
        (16, head + "privatekey = \(k2)", 3, "duplicate PrivateKey (already set on line 2)"),
        (17, head + "ListenPort = 1\nListenPort = 2", 4, "duplicate ListenPort (already set on line 3)"),
        (18, head + "MTU = 1420\nMTU = 1420", 4, "duplicate MTU"),
        (19, "[Interface]\nPrivateKey = \(k1.dropLast())", 2, "PrivateKey is not a valid base64 32-byte key"),
        (20, "[Interface]\nPrivateKey = ", 2, "PrivateKey is not a valid base64 32-byte key"),
        (21, "[Interface]\nPrivateKey = JSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJSUlJQF=", 2,
         "PrivateKey is not a valid base64 32-byte key"),
        (22, head + "[Peer]\nPublicKey = \(k2)x", 4, "PublicKey is not a valid base64 32-byte key"),
        (23, head + "[Peer]\nPublicKey = \(k2)\nPresharedKey = abc=", 5, "PresharedKey is not a valid base64"),
        (24, head + "Address = 198.19.0.1/33", 3, "Address '198.19.0.1/33' is not an IP address"),
        (25, head + "Address = 198.19.0.1/24, fd19::1/200", 3, "Address 'fd19::1/200'"),
        (26, head + "Address = 198.19.0.1/24,,10.0.0.1", 3, "empty item in the Address list"),
        (27, head + "Address = 198.19.0.1/24,", 3, "empty item in the Address list"),
        (28, head + "[Peer]\nPublicKey = \(k2)\nAllowedIPs = 10.0.0.0/8, 10.0.0.0/x", 5,
         "AllowedIPs '10.0.0.0/x' is not an IP address"),
        (29, head + "[Peer]\nPublicKey = \(k2)\nAllowedIPs = 300.0.0.0/8", 5, "AllowedIPs '300.0.0.0/8'"),
        (30, head + "ListenPort = 65536", 3, "ListenPort must be a number from 0 to 65535, not '65536'"),
        (31, head + "ListenPort = -1", 3, "ListenPort must be a number"),
        (32, head + "ListenPort = 51820x", 3, "not '51820x'"),
        (33, head + "ListenPort =", 3, "ListenPort must be a number"),
        (34, head + "MTU = 575", 3, "MTU must be a number from 576 to 65535, not '575'"),
        (35, head + "MTU = 65536", 3, "MTU must be a number from 576 to 65535"),
        (36, head + "MTU = big", 3, "MTU must be a number"),
        (37, head + "MTU = 1279\nAddress = 10.0.0.1/8\nAddress = fd00::1/64", 3,
         "MTU 1279 is below 1280, the minimum for IPv6 (IPv6 Address on line 5)"),
        (38, head + "[Peer]\nPublicKey = \(k2)\nPersistentKeepalive = 65536", 5,
         "PersistentKeepalive must be 'off' or a number from 0 to 65535, not '65536'"),
        (39, head + "[Peer]\nPublicKey = \(k2)\nPersistentKeepalive = on", 5, "PersistentKeepalive must be 'off'"),
        (40, head + "[Peer]\nPublicKey = \(k2)\nPersistentKeepalive = 25\nPersistentKeepalive = 30", 6,
         "duplicate PersistentKeepalive (already set on line 5)"),
        (41, head + "[Peer]\nPublicKey = \(k2)\nEndpoint = 198.18.0.2", 5, "Endpoint '198.18.0.2' is invalid: missing ':PORT'"),
        (42, head + "[Peer]\nPublicKey = \(k2)\nEndpoint = 198.18.0.2:0", 5, "port 0 is not allowed"),
        (43, head + "[Peer]\nPublicKey = \(k2)\nEndpoint = 198.18.0.2:70000", 5, "port '70000' is not a number"),
        (44, head + "[Peer]\nPublicKey = \(k2)\nEndpoint = fd18::2:51820", 5, "an IPv6 address must be in brackets"),
        (45, head + "[Peer]\nPublicKey = \(k2)\nEndpoint = :51820", 5, "empty host"),
        (46, head + "[Peer]\nPublicKey = \(k2)\nEndpoint = [fd18::2]", 5, "missing ':PORT' after ']'"),
        (47, head + "[Peer]\nPublicKey = \(k2)\nEndpoint = 1.2.3.4:1\nEndpoint = 1.2.3.4:2", 6, "duplicate Endpoint"),
        (48, head + "[Peer]\nPublicKey = \(k2)\n\n[Peer]\n# same key again\nPublicKey = \(k2)", 8,
         "duplicate peer: this PublicKey is already used by the [Peer] on line 3"),
        (49, head + "[Peer]\nAllowedIPs = 10.0.0.0/8\n[Peer]\nPublicKey = \(k2)", 3, "[Peer] has no PublicKey"),
        (50, head + "[Peer]\nPublicKey = \(k2)\n[Peer]\n", 5, "[Peer] has no PublicKey"),
        (51, head + "[Peer]\nPublicKey = \(k2)\nPublicKey = \(k3)", 5, "duplicate PublicKey (already set on line 4)"),
        (52, head + "[Peer]\nPublicKey = \(k2)\nPresharedKey = \(k3)\nPresharedKey = \(k3)", 6, "duplicate PresharedKey"),
        (53, head + "[]", 3, "unknown section []"),
        (54, "[Interface]\r\nPrivateKey = \(k1)\r\nFoo = bar\r\n", 3, "unknown key 'Foo'"),
    ]

    func testRejected() {
        for (number, text, line, fragment) in Self.rejected {
            do {
                let config = try ConfigParser.parse(text, file: "bad.conf")
                XCTFail("case \(number) parsed: \(config)")
            } catch {
                XCTAssertEqual(error.file, "bad.conf", "case \(number)")
                XCTAssertEqual(error.line, line, "case \(number): \(error)")
                XCTAssertTrue(error.message.contains(fragment), "case \(number): '\(error.message)' lacks '\(fragment)'")
                XCTAssertEqual(error.description, "bad.conf:\(line): \(error.message)", "case \(number)")
            }
        }
        XCTAssertGreaterThanOrEqual(Self.rejected.count, 25)
    }

    // MARK: A realistic file

    func testRealisticFile() throws {
        let text = """
        # vpnfast test host A: wg-quick format
        [Interface]
        # This machine
        PrivateKey = \(k1)
        Address = 198.19.0.1/24, fd19::1/64   # both families
        ListenPort = 51820
        MTU = 1420
        DNS = 198.19.0.53
        PostUp = iptables -A FORWARD -i %i -j ACCEPT; iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE
        PostDown = iptables -D FORWARD -i %i -j ACCEPT

        [Peer]
        # B, reachable over IPv6
        PublicKey = \(k2)
        PresharedKey = \(k5)
        AllowedIPs = 198.19.0.2/32, fd19::2/128
        AllowedIPs = 198.20.0.0/16
        Endpoint = [fd18::2]:51820
        PersistentKeepalive = 25

        [peer]
        # C, a roaming laptop: no endpoint
        publickey = \(k3)
        allowedips = 198.19.0.3/32,fd19::3/128

        [Peer]
        PublicKey=\(k4)
        AllowedIPs=0.0.0.0/0,::/0
        Endpoint=gateway.example.net:4500
        PersistentKeepalive=off
        """
        let c = try ConfigParser.parse(text, file: "wg0.conf")
        XCTAssertEqual(c.privateKey, k1)
        XCTAssertEqual(c.addresses, [InterfaceAddress("198.19.0.1/24")!, InterfaceAddress("fd19::1/64")!])
        XCTAssertEqual(c.listenPort, 51820)
        XCTAssertEqual(c.mtu, 1420)
        XCTAssertEqual(c.ignoredKeys.map(\.key), ["DNS", "PostUp", "PostDown"])
        XCTAssertEqual(c.ignoredKeys.map(\.line), [8, 9, 10])
        XCTAssertEqual(c.peers.count, 3)

        let b = c.peers[0]
        XCTAssertEqual(b.line, 12)
        XCTAssertEqual(b.publicKey, k2)
        XCTAssertEqual(b.presharedKey, k5)
        XCTAssertEqual(b.allowedIPs.map(\.description), ["198.19.0.2/32", "fd19::2/128", "198.20.0.0/16"])
        XCTAssertEqual(b.endpoint, EndpointSpec(host: "fd18::2", port: 51820))
        XCTAssertEqual(b.persistentKeepalive, 25)

        let laptop = c.peers[1]
        XCTAssertEqual(laptop.line, 21)
        XCTAssertEqual(laptop.publicKey, k3)
        XCTAssertNil(laptop.endpoint)
        XCTAssertNil(laptop.presharedKey)
        XCTAssertEqual(laptop.allowedIPs.map(\.description), ["198.19.0.3/32", "fd19::3/128"])

        let gateway = c.peers[2]
        XCTAssertEqual(gateway.line, 26)
        XCTAssertEqual(gateway.endpoint, EndpointSpec(host: "gateway.example.net", port: 4500))
        XCTAssertNil(gateway.persistentKeepalive)

        // The peers' prefixes load into a routing table.
        var table = AllowedIPs()
        for (i, peer) in c.peers.enumerated() {
            for prefix in peer.allowedIPs { table.insert(prefix, peer: Int32(i)) }
        }
        XCTAssertEqual(table.lookup(IPAddress("198.19.0.2")!), 0)
        XCTAssertEqual(table.lookup(IPAddress("198.20.1.1")!), 0)
        XCTAssertEqual(table.lookup(IPAddress("fd19::3")!), 1)
        XCTAssertEqual(table.lookup(IPAddress("8.8.8.8")!), 2)
        XCTAssertEqual(table.lookup(IPAddress("2001:db8::1")!), 2)
    }
}
