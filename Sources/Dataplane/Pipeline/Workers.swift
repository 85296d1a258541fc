// Crypto workers: take chunks of batches from the device-wide queue and seal or open every packet in place.
// The worker that finishes a batch's last chunk releases it to the ordered stage waiting for it.
import Crypto

extension Device {
    func cryptoWorkerLoop(worker: Int, context: AEADContext) {
        var finished = false
        while let job = cryptoQueue.pop(worker: worker, finished: finished) {
            finished = true
            let batch = job.batch
            if job.count > 0 {
                let items = UnsafeMutableBufferPointer(start: batch.items + job.start, count: job.count)
                switch batch.work {
                case .encrypt: context.seal(items)
                case .decrypt: context.open(items)
                }
            }
            if batch.pendingChunks.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
                batch.crypted.store(true, ordering: .releasing)
                switch batch.work {
                case .encrypt: sendQueue.notify()
                case .decrypt: receiveQueue.notify()
                }
            }
        }
    }
}
