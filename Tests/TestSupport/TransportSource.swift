// Sealed transport messages on an established keypair, sent as the peer's device would send them but without one:
// lets a benchmark drive a receiving device alone. Preallocated buffers; nothing is allocated per call.
import Crypto
import Dataplane

public final class TransportSource: @unchecked Sendable {  // used by one thread at a time
    public let keypair: Keypair
    private let bind: RingBind
    private let destination: Endpoint
    private let batch: Int
    private let slotSize: Int
    private let slab: UnsafeMutableRawPointer
    private let buffers: UnsafeMutablePointer<UnsafeMutableRawPointer>
    private let lengths: UnsafeMutablePointer<UInt32>
    private let endpoints: UnsafeMutablePointer<Endpoint>
    private let items: UnsafeMutablePointer<AEADItem>
    private let inner: UnsafeMutableRawPointer
    private let innerLength: Int
    private let paddedInner: Int

    /// Messages carry `packet` (padded for `mtu` as a device pads it) on `keypair`'s sending key and go out
    /// through `bind` to `destination`, at most `batch` per send call.
    public init(keypair: Keypair, packet: [UInt8], mtu: Int, from bind: RingBind, to destination: Endpoint,
                batch: Int = PacketBatch.capacity) {
        self.keypair = keypair
        self.bind = bind
        self.destination = destination
        self.batch = batch
        innerLength = packet.count
        paddedInner = paddedLength(packet.count, mtu: mtu)
        slotSize = (MessageLayout.transportHeaderSize + paddedInner + MessageLayout.tagSize + 63) & ~63
        slab = .allocate(byteCount: slotSize * batch, alignment: 64)
        slab.initializeMemory(as: UInt8.self, repeating: 0, count: slotSize * batch)
        buffers = .allocate(capacity: batch)
        for i in 0..<batch { buffers[i] = slab + i * slotSize }
        lengths = .allocate(capacity: batch)
        lengths.initialize(repeating: 0, count: batch)
        endpoints = .allocate(capacity: batch)
        endpoints.initialize(repeating: destination, count: batch)
        items = .allocate(capacity: batch)
        items.initialize(repeating: AEADItem(data: slab, key: UnsafeRawPointer(slab), counter: 0, length: 0),
                         count: batch)
        inner = .allocate(byteCount: max(packet.count, 1), alignment: 16)
        packet.withUnsafeBytes { if let base = $0.baseAddress { inner.copyMemory(from: base, byteCount: $0.count) } }
    }

    deinit {
        slab.deallocate(); buffers.deallocate(); lengths.deallocate(); endpoints.deallocate()
        items.deallocate(); inner.deallocate()
    }

    /// Seals and sends `count` messages with the keypair's next counters. Returns how many the network took
    /// (fewer only if the keypair ran out of counters or the destination's ring stayed full).
    public func send(_ count: Int) -> Int {
        var sent = 0
        while sent < count {
            let m = min(batch, count - sent)
            guard let first = keypair.reserveCounters(UInt64(m), now: SystemClock().now()) else { break }
            for i in 0..<m {
                let h = buffers[i]
                let counter = first + UInt64(i)
                h.storeBytes(of: MessageType.transport.rawValue.littleEndian, as: UInt32.self)
                h.storeBytes(of: keypair.remoteIndex.littleEndian, toByteOffset: 4, as: UInt32.self)
                h.storeBytes(of: counter.littleEndian, toByteOffset: 8, as: UInt64.self)
                let text = h + MessageLayout.transportHeaderSize
                text.copyMemory(from: inner, byteCount: innerLength)
                (text + innerLength).initializeMemory(as: UInt8.self, repeating: 0, count: paddedInner - innerLength)
                items[i] = AEADItem(data: text, key: keypair.sendKey.unsafePointer, counter: counter,
                                    length: Int32(paddedInner))
                lengths[i] = UInt32(MessageLayout.transportHeaderSize + paddedInner + MessageLayout.tagSize)
            }
            AEADBatch.seal(UnsafeMutableBufferPointer(start: items, count: m))
            let accepted = (try? bind.send(buffers, lengths: lengths, endpoints: endpoints, count: m)) ?? 0
            sent += accepted
            if accepted < m { break }
        }
        return sent
    }
}
