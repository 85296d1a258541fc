// --flowlabel's mapping from inner flow hash to a leased outer label: stable per flow, spread over the pool, only
// on IPv6 endpoints, in network byte order in sin6_flowinfo.
import Crypto
import Dataplane
import XCTest

final class FlowLabelPoolTests: XCTestCase {
    private let leased: [UInt32] = (1...64).map { UInt32($0) * 0x3_1f0b & 0xfffff }

    func testMappingIsStableAndSpreadOverThePool() {
        let pool = FlowLabelPool(labels: leased, hasher: FlowHasher(key: SecureRandom.bytes(16)))
        var rng = SeededRandom(seed: 3)
        var used = Set<UInt32>()
        for _ in 0..<4096 {
            let h = UInt32(truncatingIfNeeded: rng.next())
            let l = pool.label(forHash: h)
            XCTAssertEqual(pool.label(forHash: h), l, "same flow, same label")
            XCTAssertTrue(leased.contains(l), "only leased labels are used")
            used.insert(l)
        }
        XCTAssertEqual(used.count, leased.count, "4096 flows reach every label of the pool")
        // Hashes that fq_codel would put in neighbouring queues (same top bits) still get different labels.
        let close = Set((0..<64).map { pool.label(forHash: 0x8000_0000 | UInt32($0) << 10) })
        XCTAssertGreaterThan(close.count, 32)
    }

    func testOnlyIPv6EndpointsCarryALabel() {
        let pool = FlowLabelPool(labels: [0x12345], hasher: FlowHasher(key: SecureRandom.bytes(16)))
        let table: [(String, UInt32)] = [("fd18::2", UInt32(0x12345).bigEndian), ("198.18.0.2", 0)]
        for (address, flowinfo) in table {
            var e = Endpoint(address: IPAddress(address)!, port: 51820)
            pool.apply(to: &e, hash: 0xdead_beef)
            XCTAssertEqual(e.raw.sin6_flowinfo, flowinfo, address)
            XCTAssertEqual(e, Endpoint(address: IPAddress(address)!, port: 51820), "the label is not part of identity")
        }
    }
}
