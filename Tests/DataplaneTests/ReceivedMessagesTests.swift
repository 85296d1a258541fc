// ReceivedMessages.split: messages (some GRO trains, some truncated) into datagrams, within a packet limit; what
// does not fit is dropped and counted, never lost silently.
import XCTest
@testable import Dataplane

final class ReceivedMessagesTests: XCTestCase {
    struct Message {
        var length: Int
        var segment: Int = 0  // 0: one datagram
        var truncated = false
    }

    struct Case {
        let name: String
        let messages: [Message]
        let maxPackets: Int
        let lengths: [Int]  // the datagrams expected, in order
        let dropped: Int
    }

    static let cases: [Case] = [
        Case(name: "single datagrams", messages: [Message(length: 100), Message(length: 60)], maxPackets: 8,
             lengths: [100, 60], dropped: 0),
        Case(name: "GRO train with a short tail", messages: [Message(length: 350, segment: 100)], maxPackets: 8,
             lengths: [100, 100, 100, 50], dropped: 0),
        Case(name: "truncated message skipped", messages: [Message(length: 80, truncated: true), Message(length: 40)],
             maxPackets: 8, lengths: [40], dropped: 1),
        Case(name: "train cut at the limit", messages: [Message(length: 600, segment: 100)], maxPackets: 4,
             lengths: [100, 100, 100, 100], dropped: 2),
        Case(name: "cut train with a short tail", messages: [Message(length: 550, segment: 100)], maxPackets: 3,
             lengths: [100, 100, 100], dropped: 3),
        Case(name: "messages after the limit", messages: [Message(length: 300, segment: 100), Message(length: 70),
                                                          Message(length: 200, segment: 100),
                                                          Message(length: 90, truncated: true)],
             maxPackets: 3, lengths: [100, 100, 100], dropped: 1 + 2 + 1),
        Case(name: "exactly full", messages: [Message(length: 200, segment: 100), Message(length: 30)], maxPackets: 3,
             lengths: [100, 100, 30], dropped: 0),
        Case(name: "empty datagram", messages: [Message(length: 0), Message(length: 10)], maxPackets: 1,
             lengths: [0], dropped: 1),
        // More segments in one message than the 64 the arrays are sized for (a local 128-segment UDP_SEGMENT send).
        Case(name: "128-segment train into 64 slots", messages: [Message(length: 128 * 100, segment: 100)],
             maxPackets: 64, lengths: Array(repeating: 100, count: 64), dropped: 64),
    ]

    func testSplitTable() {
        let capacity = 8
        let messages = ReceivedMessages(capacity: capacity)
        defer { messages.deallocate() }
        let bufferSize = 128 * 100
        let buffers = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: capacity)
        for i in 0..<capacity { buffers[i] = .allocate(byteCount: bufferSize, alignment: 16) }
        let maxOut = 128
        let packets = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: maxOut)
        let lengths = UnsafeMutablePointer<UInt32>.allocate(capacity: maxOut)
        let endpoints = UnsafeMutablePointer<Endpoint>.allocate(capacity: maxOut)
        endpoints.initialize(repeating: Endpoint(), count: maxOut)
        let tos = UnsafeMutablePointer<UInt8>.allocate(capacity: maxOut)
        let stamps = UnsafeMutablePointer<UInt64>.allocate(capacity: maxOut)
        defer {
            for i in 0..<capacity { buffers[i].deallocate() }
            buffers.deallocate(); packets.deallocate(); lengths.deallocate(); endpoints.deallocate()
            tos.deallocate(); stamps.deallocate()
        }

        for c in Self.cases {
            for (i, m) in c.messages.enumerated() {
                messages.lengths[i] = UInt32(m.length)
                messages.segments[i] = UInt16(m.segment)
                messages.truncated[i] = m.truncated ? 1 : 0
                messages.tos[i] = UInt8(i + 1)
                messages.stamps[i] = UInt64(1000 + i)
            }
            var dropped = 0
            let n = messages.split(c.messages.count, buffers: buffers, packets: packets, lengths: lengths,
                                   endpoints: endpoints, tos: tos, timestamps: stamps, maxPackets: c.maxPackets,
                                   truncated: &dropped)
            XCTAssertEqual(n, c.lengths.count, c.name)
            XCTAssertEqual(dropped, c.dropped, c.name)
            XCTAssertEqual((0..<n).map { Int(lengths[$0]) }, c.lengths, c.name)
            // Each datagram points into its own message's buffer, right after the previous one of that message,
            // and carries that message's TOS and timestamp.
            var k = 0
            for (i, m) in c.messages.enumerated() where !m.truncated {
                var off = 0
                while k < n && (off < m.length || (m.length == 0 && off == 0)) {
                    XCTAssertEqual(packets[k], buffers[i] + off, "\(c.name): datagram \(k)")
                    XCTAssertEqual(tos[k], UInt8(i + 1), "\(c.name): datagram \(k)")
                    XCTAssertEqual(stamps[k], UInt64(1000 + i), "\(c.name): datagram \(k)")
                    off += max(1, Int(lengths[k]))
                    k += 1
                }
            }
            XCTAssertEqual(k, n, c.name)
        }
    }
}
