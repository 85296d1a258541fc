import XCTest
@testable import Crypto

final class AEADBatchTests: XCTestCase {
    let lengths = [0, 1, 15, 16, 1420, 9000]

    /// One packet per (length, key) pair, each in its own buffer with room for the tag.
    struct Packet {
        let key: SecretKey
        let counter: UInt64
        let plaintext: [UInt8]
        let buffer: UnsafeMutableRawBufferPointer
    }

    private func makePackets(keys: [SecretKey]) -> [Packet] {
        var packets: [Packet] = []
        for (index, length) in (lengths + lengths.reversed()).enumerated() {
            let plaintext = SecureRandom.bytes(length)
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: length + 16, alignment: 16)
            buffer.copyBytes(from: plaintext + [UInt8](repeating: 0, count: 16))
            let counter = UInt64(index) * 0x1_0000_0001   // exercises both halves of the nonce
            packets.append(Packet(key: keys[index % keys.count], counter: counter, plaintext: plaintext, buffer: buffer))
        }
        return packets
    }

    func testBatchSealMatchesSingleSealAndBatchOpenReverses() {
        let keys = (0..<3).map { _ in SecretKey.random() }
        let packets = makePackets(keys: keys)
        defer { packets.forEach { $0.buffer.deallocate() } }
        var items = packets.map {
            AEADItem(data: $0.buffer.baseAddress!, key: $0.key.unsafePointer, counter: $0.counter,
                     length: Int32($0.plaintext.count))
        }

        items.withUnsafeMutableBufferPointer { AEADBatch.seal($0) }
        for (item, packet) in zip(items, packets) {
            XCTAssertTrue(item.ok)
            XCTAssertEqual(Int(item.length), packet.plaintext.count, "seal leaves length alone")
            let single = ChaChaPoly.seal(key: packet.key, counter: packet.counter, plaintext: packet.plaintext, ad: [])
            XCTAssertEqual(Array(packet.buffer), single, "length \(packet.plaintext.count)")
        }

        for index in items.indices {
            items[index].length += 16
            items[index].ok = false
        }
        items.withUnsafeMutableBufferPointer { AEADBatch.open($0) }
        for (item, packet) in zip(items, packets) {
            XCTAssertTrue(item.ok)
            XCTAssertEqual(Int(item.length), packet.plaintext.count)
            XCTAssertEqual(Array(packet.buffer.prefix(packet.plaintext.count)), packet.plaintext)
        }
        withExtendedLifetime(keys) {}
    }

    func testBatchOpenFlagsEachBadPacketAlone() {
        let keys = (0..<2).map { _ in SecretKey.random() }
        let wrongKey = SecretKey.random()
        let packets = makePackets(keys: keys)
        defer { packets.forEach { $0.buffer.deallocate() } }
        for packet in packets {
            let sealed = ChaChaPoly.seal(key: packet.key, counter: packet.counter, plaintext: packet.plaintext, ad: [])
            packet.buffer.copyBytes(from: sealed)
        }
        var items = packets.map {
            AEADItem(data: $0.buffer.baseAddress!, key: $0.key.unsafePointer, counter: $0.counter,
                     length: Int32($0.plaintext.count + 16))
        }
        // Spoil every third packet in a different way; the rest must still open.
        var spoiled = Set<Int>()
        for index in stride(from: 0, to: items.count, by: 3) {
            switch (index / 3) % 4 {
            case 0: packets[index].buffer[packets[index].buffer.count - 1] ^= 1   // tag bit
            case 1: items[index].counter &+= 1                                   // wrong counter
            case 2: items[index].key = wrongKey.unsafePointer                    // wrong key
            default: items[index].length = 15                                    // shorter than a tag
            }
            spoiled.insert(index)
        }
        items.withUnsafeMutableBufferPointer { AEADBatch.open($0) }
        for (index, (item, packet)) in zip(items, packets).enumerated() {
            if spoiled.contains(index) {
                XCTAssertFalse(item.ok, "packet \(index)")
                XCTAssertEqual(Int(item.length), index / 3 % 4 == 3 ? 15 : packet.plaintext.count + 16, "length kept on failure")
            } else {
                XCTAssertTrue(item.ok, "packet \(index)")
                XCTAssertEqual(Array(packet.buffer.prefix(Int(item.length))), packet.plaintext)
            }
        }
        withExtendedLifetime((keys, wrongKey)) {}
    }

    func testEmptyBatch() {
        AEADBatch.seal(UnsafeMutableBufferPointer(start: nil, count: 0))
        AEADBatch.open(UnsafeMutableBufferPointer(start: nil, count: 0))
    }
}
