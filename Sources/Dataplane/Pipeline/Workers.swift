// Crypto workers: take whole batches from the device-wide queue, seal or open every packet in place, then
// release the batch to the ordered stage waiting for it.
import Crypto

extension Device {
    func cryptoWorkerLoop() {
        while let batch = cryptoQueue.pop() {
            if batch.count > 0 {
                let items = UnsafeMutableBufferPointer(start: batch.items, count: batch.count)
                switch batch.work {
                case .encrypt: AEADBatch.seal(items)
                case .decrypt: AEADBatch.open(items)
                }
            }
            batch.crypted.store(true, ordering: .releasing)
            switch batch.work {
            case .encrypt: sendQueue.notify()
            case .decrypt: receiveQueue.notify()
            }
        }
    }
}
