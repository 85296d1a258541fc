import XCTest
@testable import Dataplane

final class AllowedIPsTests: XCTestCase {
    private func insert(_ table: inout AllowedIPs, _ entries: [(String, Int32)]) {
        for (text, peer) in entries { table.insert(IPPrefix(text)!, peer: peer) }
    }

    /// Each case: address, expected owner.
    private func expect(_ table: AllowedIPs, _ cases: [(String, Int32?)], step: String,
                        file: StaticString = #filePath, line: UInt = #line) {
        for (i, (text, peer)) in cases.enumerated() {
            let address = IPAddress(text)!
            XCTAssertEqual(table.lookup(address), peer, "\(step) case \(i): \(text)", file: file, line: line)
            switch address {
            case .v4(let a): XCTAssertEqual(table.lookupV4(a), peer, file: file, line: line)
            case .v6(let hi, let lo): XCTAssertEqual(table.lookupV6(hi, lo), peer, file: file, line: line)
            }
        }
        XCTAssertNil(checkInvariants(table.v4), file: file, line: line)
        XCTAssertNil(checkInvariants(table.v6), file: file, line: line)
    }

    func testEmpty() {
        let table = AllowedIPs()
        expect(table, [("0.0.0.0", nil), ("255.255.255.255", nil), ("::", nil), ("fd00::1", nil)], step: "empty")
        XCTAssertEqual(table.count, 0)
        XCTAssertEqual(table.prefixes(of: 1), [])
    }

    func testIPv4OverlapsReplacementAndRemoval() {
        var t = AllowedIPs()
        insert(&t, [
            ("0.0.0.0/0", 1), ("10.0.0.0/8", 2), ("10.1.0.0/16", 3), ("10.1.2.3/32", 4),
            ("10.1.2.0/24", 5),  // an ancestor of an existing /32: goes in between
            ("192.168.0.0/24", 6), ("192.168.1.0/24", 7),  // siblings: joined at /23
            ("192.168.0.128/25", 8), ("192.168.1.77/24", 7),  // host bits ignored; same prefix again
            ("128.0.0.0/1", 9), ("255.255.255.255/32", 10),
        ])
        XCTAssertEqual(t.count, 10)
        expect(t, [
            ("1.2.3.4", 1), ("10.9.9.9", 2), ("10.1.9.9", 3), ("10.1.2.3", 4), ("10.1.2.4", 5), ("10.1.2.2", 5),
            ("10.1.3.3", 3), ("11.0.0.0", 1), ("9.255.255.255", 1), ("192.168.0.1", 6), ("192.168.0.127", 6),
            ("192.168.0.128", 8), ("192.168.0.255", 8), ("192.168.1.0", 7), ("192.168.1.255", 7),
            ("192.168.2.0", 9), ("192.167.255.255", 9), ("128.0.0.0", 9), ("127.255.255.255", 1),
            ("255.255.255.255", 10), ("255.255.255.254", 9), ("::ffff:10.1.2.3", nil), ("::a01:203", nil),
        ], step: "inserted")

        // A prefix belongs to one peer: inserting it again moves it.
        t.insert(IPPrefix("10.0.0.0/8")!, peer: 11)
        t.insert(IPPrefix("192.168.0.0/23")!, peer: 12)  // lands on the join node
        XCTAssertEqual(t.count, 11)
        expect(t, [("10.9.9.9", 11), ("10.1.9.9", 3), ("192.168.0.1", 6), ("192.168.1.1", 7)], step: "replaced")

        t.remove(IPPrefix("10.1.0.0/16")!)
        t.remove(IPPrefix("10.1.0.0/16")!)  // twice: no-op
        t.remove(IPPrefix("10.1.0.0/17")!)  // never inserted
        t.remove(IPPrefix("10.1.2.3/31")!)  // never inserted, between existing prefixes
        XCTAssertEqual(t.count, 10)
        expect(t, [("10.1.9.9", 11), ("10.1.2.9", 5), ("10.1.2.3", 4)], step: "removed /16")

        t.remove(IPPrefix("192.168.0.0/24")!)  // one child (the /25): spliced out
        expect(t, [("192.168.0.1", 12), ("192.168.0.200", 8), ("192.168.1.1", 7)], step: "removed /24")
        t.remove(IPPrefix("192.168.0.0/23")!)
        expect(t, [("192.168.0.1", 9), ("192.168.0.200", 8), ("192.168.1.1", 7)], step: "removed /23")

        t.removeAll(peer: 11)
        t.removeAll(peer: 1)
        expect(t, [("10.9.9.9", nil), ("1.2.3.4", nil), ("10.1.2.4", 5), ("200.0.0.1", 9)], step: "removeAll")

        for p in [4, 5, 7, 8, 9, 10] as [Int32] { t.removeAll(peer: p) }
        XCTAssertEqual(t.count, 0)
        XCTAssertTrue(t.v4.nodes.isEmpty, "an empty table frees its nodes")
        expect(t, [("10.1.2.3", nil), ("0.0.0.0", nil)], step: "emptied")
    }

    func testIPv6() {
        var t = AllowedIPs()
        insert(&t, [
            ("::/0", 1), ("fd00::/8", 2), ("fd19::/64", 3), ("fd19::/65", 4), ("fd19::8000:0:0:0/65", 5),
            ("fd19::1", 6), ("2001:db8::/32", 7), ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff/128", 8),
            ("0.0.0.0/0", 9),
        ])
        XCTAssertEqual(t.count, 9)
        expect(t, [
            ("fd19::1", 6), ("fd19::2", 4), ("fd19::7fff:ffff:ffff:ffff", 4), ("fd19::8000:0:0:0", 5),
            ("fd19:0:0:0:ffff:ffff:ffff:ffff", 5), ("fd19:0:0:1::", 2), ("fdff::", 2), ("fe00::", 1), ("::", 1),
            ("2001:db8::1", 7), ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 8),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:fffe", 7), ("2001:db9::", 1), ("::ffff:1.2.3.4", 1),
            ("1.2.3.4", 9),
        ], step: "inserted")

        t.remove(IPPrefix("fd19::/65")!)
        t.remove(IPPrefix("fd19::/64")!)
        expect(t, [("fd19::1", 6), ("fd19::2", 2), ("fd19::8000:0:0:0", 5)], step: "removed")
        XCTAssertEqual(t.prefixes(of: 6), [IPPrefix("fd19::1/128")!])

        t.insert(IPPrefix("fd19::1/128")!, peer: 2)
        XCTAssertEqual(t.prefixes(of: 6), [])
        XCTAssertEqual(t.prefixes(of: 2).map(\.description), ["fd00::/8", "fd19::1/128"])
    }

    func testPrefixesOfPeerAreSorted() {
        var t = AllowedIPs()
        insert(&t, [("fd00::/8", 1), ("10.0.0.0/8", 1), ("9.0.0.0/8", 1), ("10.0.0.0/16", 1), ("::/0", 1),
                    ("1.2.3.4/32", 2)])
        XCTAssertEqual(t.prefixes(of: 1).map(\.description),
                       ["9.0.0.0/8", "10.0.0.0/8", "10.0.0.0/16", "::/0", "fd00::/8"])
        XCTAssertEqual(t.prefixes(of: 2).map(\.description), ["1.2.3.4/32"])
        XCTAssertEqual(t.prefixes(of: 3), [])
    }

    func testCopiesAreIndependent() {
        var a = AllowedIPs()
        a.insert(IPPrefix("10.0.0.0/8")!, peer: 1)
        var b = a
        b.insert(IPPrefix("10.0.0.0/8")!, peer: 2)
        b.insert(IPPrefix("fd00::/8")!, peer: 2)
        XCTAssertEqual(a.lookupV4(0x0A00_0001), 1)
        XCTAssertNil(a.lookup(IPAddress("fd00::1")!))
        XCTAssertEqual(b.lookupV4(0x0A00_0001), 2)
        XCTAssertEqual(a.count, 1)
        XCTAssertEqual(b.count, 2)
    }

    func testNegativeAndExtremePeerIDs() {
        var t = AllowedIPs()
        t.insert(IPPrefix("10.0.0.0/8")!, peer: -1)
        t.insert(IPPrefix("10.0.0.0/9")!, peer: .min)
        t.insert(IPPrefix("10.0.0.0/10")!, peer: .max)
        XCTAssertEqual(t.lookupV4(0x0A80_0000), -1)
        XCTAssertEqual(t.lookupV4(0x0A40_0000), .min)
        XCTAssertEqual(t.lookupV4(0x0A00_0000), .max)
    }

    // MARK: Randomized against a naive model

    /// The reference: a plain dictionary, matched by scanning every prefix.
    struct NaiveTable {
        var owners: [IPPrefix: Int32] = [:]

        func lookup(_ a: IPAddress) -> Int32? {
            var best: (UInt8, Int32)? = nil
            for (prefix, peer) in owners where prefix.contains(a) {
                if best == nil || prefix.length > best!.0 { best = (prefix.length, peer) }
            }
            return best?.1
        }

        mutating func removeAll(peer: Int32) {
            owners = owners.filter { $0.value != peer }
        }
    }

    /// Addresses clustered around a few bases, so prefixes nest and part at every depth.
    private func randomAddress(v6: Bool, bases: [IPAddress], using rng: inout SeededRandom) -> IPAddress {
        let base = bases.randomElement(using: &rng)!
        let keep = Int.random(in: 0...(v6 ? 128 : 32), using: &rng)
        switch base {
        case .v4(let a):
            let noise = UInt32.random(in: 0...UInt32.max, using: &rng)
            let mask: UInt32 = keep == 0 ? 0 : UInt32.max << (32 - keep)
            return .v4(a & mask | noise & ~mask)
        case .v6(let hi, let lo):
            let (mh, ml) = IPPrefix.maskV6(UInt8(keep))
            let nh = UInt64.random(in: 0...UInt64.max, using: &rng)
            let nl = UInt64.random(in: 0...UInt64.max, using: &rng)
            return .v6(hi & mh | nh & ~mh, lo & ml | nl & ~ml)
        }
    }

    private func randomRun(v6: Bool, seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let width = v6 ? 128 : 32
        let bases: [IPAddress] = (0..<8).map { _ in
            v6 ? .v6(UInt64.random(in: 0...UInt64.max, using: &rng), UInt64.random(in: 0...UInt64.max, using: &rng))
               : .v4(UInt32.random(in: 0...UInt32.max, using: &rng))
        }
        var table = AllowedIPs()
        var model = NaiveTable()
        var inserted: [IPPrefix] = []

        func compare(_ lookups: Int) {
            for _ in 0..<lookups {
                let a: IPAddress
                if !inserted.isEmpty, Bool.random(using: &rng) {
                    // Inside or just past a prefix we inserted.
                    let p = inserted.randomElement(using: &rng)!
                    a = randomAddress(v6: v6, bases: [p.address], using: &rng)
                } else {
                    a = randomAddress(v6: v6, bases: bases, using: &rng)
                }
                XCTAssertEqual(table.lookup(a), model.lookup(a), "seed \(seed): \(a)")
            }
            XCTAssertEqual(table.count, model.owners.count)
        }

        for round in 0..<2000 {
            let action = Int.random(in: 0..<100, using: &rng)
            if action < 75 || inserted.isEmpty {
                // Lengths near the ends of the range are the interesting ones; draw them more often.
                let length = Bool.random(using: &rng) ? Int.random(in: 0...width, using: &rng)
                    : [0, 1, width - 1, width].randomElement(using: &rng)!
                let p = IPPrefix(address: randomAddress(v6: v6, bases: bases, using: &rng), length: UInt8(length))
                let peer = Int32.random(in: 0..<40, using: &rng)
                table.insert(p, peer: peer)
                model.owners[p] = peer
                inserted.append(p)
            } else if action < 97 {
                let p = inserted.randomElement(using: &rng)!
                table.remove(p)
                model.owners[p] = nil
            } else {
                let peer = Int32.random(in: 0..<40, using: &rng)
                table.removeAll(peer: peer)
                model.removeAll(peer: peer)
            }
            if round % 100 == 0 {
                compare(200)
                let tree = v6 ? checkInvariants(table.v6) : checkInvariants(table.v4)
                XCTAssertNil(tree, "seed \(seed) round \(round)")
            }
        }
        compare(5000)
        for peer: Int32 in 0..<40 {
            XCTAssertEqual(table.prefixes(of: peer), model.owners.filter { $0.value == peer }.keys.sorted())
        }
    }

    func testRandomIPv4AgainstNaiveModel() {
        for seed: UInt64 in [4, 44] { randomRun(v6: false, seed: seed) }
    }

    func testRandomIPv6AgainstNaiveModel() {
        for seed: UInt64 in [6, 66] { randomRun(v6: true, seed: seed) }
    }

    // MARK: Structure

    /// Checks the trie's shape; returns a description of the first problem, or nil.
    private func checkInvariants<Key>(_ trie: PrefixTrie<Key>) -> String? {
        var owned = 0
        func visit(_ i: Int32, parent: Int32) -> String? {
            let n = trie.nodes[Int(i)]
            if n.owned { owned += 1 }
            if n.parent != parent { return "node \(i): parent \(n.parent), expected \(parent)" }
            if PrefixTrie<Key>.masked(n.key, n.length) != n.key { return "node \(i): host bits set" }
            if !n.owned && n.childCount != 2 { return "node \(i): owns nothing but has \(n.childCount) children" }
            for (bit, c) in [(Key(0), n.child0), (Key(1), n.child1)] where c >= 0 {
                let child = trie.nodes[Int(c)]
                if child.length <= n.length { return "node \(c): not longer than its parent" }
                if !PrefixTrie<Key>.samePrefix(child.key, n.key, n.length) { return "node \(c): outside its parent" }
                if PrefixTrie<Key>.bit(child.key, n.length) != bit { return "node \(c): on the wrong side" }
                if let problem = visit(c, parent: i) { return problem }
            }
            return nil
        }
        if trie.root >= 0, let problem = visit(trie.root, parent: -1) { return problem }
        if owned != trie.count { return "count \(trie.count), owned nodes \(owned)" }
        let live = trie.nodes.indices.filter { trie.nodes[$0].owned }.count
        if live != owned { return "\(live) owned nodes in storage, \(owned) reachable" }
        return nil
    }
}
