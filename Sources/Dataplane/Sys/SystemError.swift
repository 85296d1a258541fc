// Errors from the kernel, naming the call that failed.
import Glibc

public struct SystemError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let errno: Int32
    public init(_ call: String, _ errno: Int32) { self.call = call; self.errno = errno }
    public init(_ call: String, negated rc: Int) { self.call = call; self.errno = Int32(-rc) }
    public var description: String { "\(call): \(String(cString: strerror(errno))) (errno \(errno))" }
}
