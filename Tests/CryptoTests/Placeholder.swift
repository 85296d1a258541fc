import XCTest
@testable import Crypto
final class PlaceholderCryptoTests: XCTestCase { func testNothing() {} }
