import XCTest
@testable import Dataplane
final class PlaceholderDataplaneTests: XCTestCase { func testNothing() {} }
