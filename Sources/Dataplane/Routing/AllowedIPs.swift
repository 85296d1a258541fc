// Longest-prefix match from an address to the peer that owns it.
//
// One path-compressed binary trie per family. A node holds a prefix (key with the bits past `length` cleared)
// and, if a peer owns exactly that prefix, the peer. A node's children hold longer prefixes that it contains;
// which child is decided by the first bit past the node's length. A chain of single-child nodes that own nothing
// is never kept: a node that owns nothing exists only to join two subtrees that part at its length.
//
// Lookup walks down from the root while the node's prefix contains the address, remembering the last owner seen:
// at most one node per prefix length, no allocation, no recursion.
//
// Nodes live in one array and point at each other by index, so the whole structure is a value: copying an
// AllowedIPs copies (on write) its arrays, and a reader holding a copy is never disturbed by a writer.

public struct AllowedIPs: Sendable {
    var v4 = PrefixTrie<UInt32>()
    var v6 = PrefixTrie<UInt128>()

    public init() {}

    /// Gives `prefix` to `peer`, taking it from any peer that owned exactly this prefix before.
    public mutating func insert(_ prefix: IPPrefix, peer: Int32) {
        switch prefix.address {
        case .v4(let a): v4.insert(a, length: prefix.length, peer: peer)
        case .v6(let hi, let lo): v6.insert(Self.key(hi, lo), length: prefix.length, peer: peer)
        }
    }

    /// Removes exactly `prefix`; longer and shorter prefixes stay.
    public mutating func remove(_ prefix: IPPrefix) {
        switch prefix.address {
        case .v4(let a): v4.remove(a, length: prefix.length)
        case .v6(let hi, let lo): v6.remove(Self.key(hi, lo), length: prefix.length)
        }
    }

    public mutating func removeAll(peer: Int32) {
        v4.removeAll(peer: peer)
        v6.removeAll(peer: peer)
    }

    public mutating func removeAll() {
        v4 = PrefixTrie()
        v6 = PrefixTrie()
    }

    @inline(__always)
    public func lookup(_ address: IPAddress) -> Int32? {
        switch address {
        case .v4(let a): return v4.lookup(a)
        case .v6(let hi, let lo): return v6.lookup(Self.key(hi, lo))
        }
    }

    @inline(__always)
    public func lookupV4(_ address: UInt32) -> Int32? {
        v4.lookup(address)
    }

    @inline(__always)
    public func lookupV6(_ high: UInt64, _ low: UInt64) -> Int32? {
        v6.lookup(Self.key(high, low))
    }

    /// Every prefix `peer` owns, v4 first, each family in address order.
    public func prefixes(of peer: Int32) -> [IPPrefix] {
        var out: [IPPrefix] = []
        v4.forEach(peer: peer) { key, length in
            out.append(IPPrefix(address: .v4(key), length: length))
        }
        v6.forEach(peer: peer) { key, length in
            out.append(IPPrefix(address: .v6(UInt64(truncatingIfNeeded: key >> 64), UInt64(truncatingIfNeeded: key)),
                                length: length))
        }
        return out.sorted()
    }

    /// Number of prefixes owned, both families.
    public var count: Int { v4.count + v6.count }

    @inline(__always)
    static func key(_ hi: UInt64, _ lo: UInt64) -> UInt128 {
        UInt128(hi) << 64 | UInt128(lo)
    }
}

/// The trie for one family; `Key` is the address as an unsigned integer, most significant bit first.
struct PrefixTrie<Key: FixedWidthInteger & UnsignedInteger & Sendable>: Sendable {
    struct Node: Sendable {
        var key: Key
        var length: UInt8
        var owned: Bool
        var peer: Int32
        var parent: Int32
        var child0: Int32
        var child1: Int32

        @inline(__always)
        func child(_ bit: Key) -> Int32 { bit == 0 ? child0 : child1 }

        var childCount: Int { (child0 >= 0 ? 1 : 0) + (child1 >= 0 ? 1 : 0) }
    }

    static var none: Int32 { -1 }

    private(set) var nodes: [Node] = []
    private var freeList: [Int32] = []
    private(set) var root: Int32 = PrefixTrie.none
    private(set) var count = 0

    /// True if the first `length` bits of `a` and `b` are equal.
    @inline(__always)
    static func samePrefix(_ a: Key, _ b: Key, _ length: UInt8) -> Bool {
        (a ^ b) >> (Key.bitWidth - Int(length)) == 0
    }

    /// Bit `index` of `key`, counted from the most significant bit; `index` < bit width.
    @inline(__always)
    static func bit(_ key: Key, _ index: UInt8) -> Key {
        (key >> (Key.bitWidth - 1 - Int(index))) & 1
    }

    @inline(__always)
    static func masked(_ key: Key, _ length: UInt8) -> Key {
        length == 0 ? 0 : key & (~Key.zero << (Key.bitWidth - Int(length)))
    }

    func lookup(_ key: Key) -> Int32? {
        nodes.withUnsafeBufferPointer { nodes in
            var best: Int32? = nil
            var i = root
            while i >= 0 {
                let node = nodes[Int(i)]
                if !Self.samePrefix(key, node.key, node.length) { break }
                if node.owned { best = node.peer }
                if Int(node.length) == Key.bitWidth { break }
                i = node.child(Self.bit(key, node.length))
            }
            return best
        }
    }

    mutating func insert(_ key: Key, length: UInt8, peer: Int32) {
        precondition(Int(length) <= Key.bitWidth)
        let key = Self.masked(key, length)
        // Walk down through the nodes that contain the new prefix.
        var parent = Self.none
        var cur = root
        while cur >= 0 {
            let node = nodes[Int(cur)]
            if node.length > length || !Self.samePrefix(key, node.key, node.length) { break }
            if node.length == length {
                if !node.owned { count += 1 }
                nodes[Int(cur)].owned = true
                nodes[Int(cur)].peer = peer
                return
            }
            parent = cur
            cur = node.child(Self.bit(key, node.length))
        }
        count += 1
        let new = allocate(Node(key: key, length: length, owned: true, peer: peer,
                                parent: parent, child0: Self.none, child1: Self.none))
        guard cur >= 0 else {
            attach(new, under: parent, key: key)
            return
        }
        // `cur` sits where the new node belongs but does not lie inside the new prefix, or is longer than it.
        let down = nodes[Int(cur)]
        let common = UInt8(min((key ^ down.key).leadingZeroBitCount, Int(length), Int(down.length)))
        if common == length {
            // The new prefix contains `down`: put it in between.
            setChild(of: new, bit: Self.bit(down.key, length), to: cur)
            attach(new, under: parent, key: key)
        } else {
            // They part at bit `common`: join them under a node that owns nothing.
            let join = allocate(Node(key: Self.masked(key, common), length: common, owned: false, peer: 0,
                                     parent: parent, child0: Self.none, child1: Self.none))
            setChild(of: join, bit: Self.bit(down.key, common), to: cur)
            setChild(of: join, bit: Self.bit(key, common), to: new)
            attach(join, under: parent, key: key)
        }
    }

    mutating func remove(_ key: Key, length: UInt8) {
        guard Int(length) <= Key.bitWidth else { return }
        let key = Self.masked(key, length)
        var cur = root
        while cur >= 0 {
            let node = nodes[Int(cur)]
            if node.length > length || !Self.samePrefix(key, node.key, node.length) { return }
            if node.length == length { break }
            cur = node.child(Self.bit(key, node.length))
        }
        guard cur >= 0, nodes[Int(cur)].owned else { return }
        count -= 1
        nodes[Int(cur)].owned = false
        nodes[Int(cur)].peer = 0
        let node = nodes[Int(cur)]
        if node.childCount == 2 { return }  // still needed to join its two subtrees
        let parent = node.parent
        splice(cur)
        // A parent that owns nothing and has lost one of its two children joins nothing any more.
        if parent >= 0, !nodes[Int(parent)].owned, nodes[Int(parent)].childCount < 2 {
            splice(parent)
        }
        if count == 0 { self = PrefixTrie() }
    }

    mutating func removeAll(peer: Int32) {
        var doomed: [(Key, UInt8)] = []
        forEach(peer: peer) { doomed.append(($0, $1)) }
        for (key, length) in doomed { remove(key, length: length) }
    }

    /// Calls `body` with each prefix `peer` owns, in no particular order.
    func forEach(peer: Int32, _ body: (Key, UInt8) -> Void) {
        for node in nodes where node.owned && node.peer == peer {
            body(node.key, node.length)
        }
    }

    // MARK: Node bookkeeping

    private mutating func allocate(_ node: Node) -> Int32 {
        if let i = freeList.popLast() {
            nodes[Int(i)] = node
            return i
        }
        precondition(nodes.count < Int(Int32.max), "AllowedIPs is full")
        nodes.append(node)
        return Int32(nodes.count - 1)
    }

    private mutating func setChild(of parent: Int32, bit: Key, to child: Int32) {
        if bit == 0 { nodes[Int(parent)].child0 = child } else { nodes[Int(parent)].child1 = child }
        if child >= 0 { nodes[Int(child)].parent = parent }
    }

    /// Makes `child` the root, or the child of `parent` on the side that `key` (a key below `parent`) takes.
    private mutating func attach(_ child: Int32, under parent: Int32, key: Key) {
        if parent < 0 {
            root = child
            if child >= 0 { nodes[Int(child)].parent = Self.none }
        } else {
            setChild(of: parent, bit: Self.bit(key, nodes[Int(parent)].length), to: child)
        }
    }

    /// Unlinks node `i`, which has at most one child, putting that child in its place, and frees it.
    private mutating func splice(_ i: Int32) {
        let node = nodes[Int(i)]
        assert(node.childCount < 2)
        let only = node.child0 >= 0 ? node.child0 : node.child1
        attach(only, under: node.parent, key: node.key)
        nodes[Int(i)] = Node(key: 0, length: 0, owned: false, peer: 0,
                             parent: Self.none, child0: Self.none, child1: Self.none)
        freeList.append(i)
    }
}
