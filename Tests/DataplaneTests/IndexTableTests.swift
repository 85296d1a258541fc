// The session index table: fresh random indices never collide, and entries move from handshake to keypair.
import Crypto
import XCTest
@testable import Dataplane

final class IndexTableTests: XCTestCase {
    func testNewIndicesAreUnique() {
        let table = IndexTable()
        var seen = Set<UInt32>()
        for n in 0..<10_000 {
            let index = table.newHandshakeIndex(peerID: Int32(n % 7))
            XCTAssertTrue(seen.insert(index).inserted, "index \(index) handed out twice")
        }
        XCTAssertEqual(table.count, 10_000)
        for index in seen.prefix(100) {
            guard case .handshake(let peer)? = table.lookup(index) else {
                return XCTFail("index \(index) should name a handshake")
            }
            XCTAssertTrue((0..<7).contains(peer))
        }
    }

    func testHandshakeEntryNamesItsPeer() {
        let table = IndexTable()
        let a = table.newHandshakeIndex(peerID: 3)
        let b = table.newHandshakeIndex(peerID: 9)
        guard case .handshake(let pa)? = table.lookup(a), case .handshake(let pb)? = table.lookup(b) else {
            return XCTFail("both should be handshakes")
        }
        XCTAssertEqual(pa, 3)
        XCTAssertEqual(pb, 9)
    }

    func testPromoteLookupRemove() {
        let table = IndexTable()
        let index = table.newHandshakeIndex(peerID: 4)
        let keypair = Keypair(sendKey: SecretKey.random(), receiveKey: SecretKey.random(), localIndex: index,
                              remoteIndex: 99, isInitiator: true, createdAt: 0, peerID: 4)
        table.promote(keypair)
        XCTAssertEqual(table.count, 1, "promotion replaces the handshake entry")
        guard case .keypair(let found)? = table.lookup(index) else { return XCTFail("should be a keypair") }
        XCTAssertTrue(found === keypair)
        let locked = table.lock.withLock { table.lookupLocked(index) }
        guard case .keypair(let foundLocked)? = locked else { return XCTFail("should be a keypair") }
        XCTAssertTrue(foundLocked === keypair)

        XCTAssertNil(table.lookup(index &+ 1))
        table.remove(index &+ 1)   // unknown: nothing happens
        XCTAssertEqual(table.count, 1)
        table.remove(index)
        XCTAssertNil(table.lookup(index))
        XCTAssertEqual(table.count, 0)
        table.remove(index)
        XCTAssertEqual(table.count, 0)
    }

    /// A removed index may be handed out again; live ones never are.
    func testRemovedIndicesAreFreed() {
        let table = IndexTable()
        let live = (0..<1000).map { _ in table.newHandshakeIndex(peerID: 1) }
        for index in live.prefix(500) { table.remove(index) }
        XCTAssertEqual(table.count, 500)
        let kept = Set(live.suffix(500))
        for _ in 0..<1000 { XCTAssertFalse(kept.contains(table.newHandshakeIndex(peerID: 2))) }
        XCTAssertEqual(table.count, 1500)
    }
}
