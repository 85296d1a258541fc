// The control socket server: answers `show`, answers garbage with an error and keeps serving, is not held up by a
// silent client, replaces a stale socket, refuses to take over a live one, and removes its socket on stop.
import CShims
import CTestSupport
import Dataplane
import Glibc
import XCTest

final class StatusServerTests: XCTestCase {
    var dir = ""

    override func setUp() {
        dir = "/tmp/vf-status-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    override func tearDown() {
        _ = vf_unlink(dir + "/t.sock")
        rmdir(dir)
    }

    func makeServer(timeoutMs: Int = 300) throws -> StatusServer {
        let s = try StatusServer(path: dir + "/t.sock", allowedUID: getuid(), clientTimeoutMs: timeoutMs)
        s.start { _ in "state=fine\n\n" }
        return s
    }

    /// Sends raw bytes (optionally without closing the write side) and reads whatever comes back.
    func exchange(_ bytes: [UInt8]) -> String {
        let fd = vf_unix_connect(dir + "/t.sock", 3000)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { _ = vf_close(fd) }
        var b = bytes
        if !b.isEmpty { XCTAssertEqual(vf_send(fd, &b, b.count), b.count) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { vf_read(fd, $0.baseAddress!, $0.count) }
            if n <= 0 { break }
            out += chunk[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    func testAnswersAndSurvivesGarbage() throws {
        let s = try makeServer()
        defer { s.stop() }
        var st = stat()
        XCTAssertEqual(stat(dir, &st), 0)
        XCTAssertEqual(st.st_mode & 0o7777, 0o700, "directory mode")
        XCTAssertEqual(stat(s.path, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600, "socket mode")

        let cases: [(send: [UInt8], answerPrefix: String)] = [
            (Array("show\n".utf8), "state=fine\n\n"),
            (Array("bogus\n".utf8), "error=unknown request 'bogus'"),
            ([0xff, 0x00, 0x13, 0x0a], "error=request is not a line"),
            (Array(repeating: UInt8(ascii: "a"), count: 10_000), "error=request too long"),
            (Array("\n".utf8), "error=empty request"),
            (Array("show\n".utf8), "state=fine\n\n"),
        ]
        for c in cases {
            let answer = exchange(c.send)
            XCTAssertTrue(answer.hasPrefix(c.answerPrefix), "sent \(c.send.prefix(16)): got \(answer.debugDescription)")
            XCTAssertTrue(answer.hasSuffix("\n\n"))
        }
        XCTAssertEqual(try StatusClient.request("show", path: s.path), "state=fine\n\n")
    }

    func testSilentClientIsCutOff() throws {
        let s = try makeServer(timeoutMs: 300)
        defer { s.stop() }
        // A client that connects and says nothing: the server hangs up after its timeout...
        let silent = vf_unix_connect(s.path, 3000)
        XCTAssertGreaterThanOrEqual(silent, 0)
        defer { _ = vf_close(silent) }
        // ...and the next client is answered, within about that time.
        let t0 = vf_monotonic_ns()
        XCTAssertEqual(try StatusClient.request("show", path: s.path, timeoutMs: 3000), "state=fine\n\n")
        let waited = vf_monotonic_ns() - t0
        XCTAssertLessThan(waited, 2_000_000_000, "waited \(waited) ns behind a silent client")
        var byte: UInt8 = 0
        XCTAssertEqual(vf_read(silent, &byte, 1), 0, "the silent client was hung up on")
    }

    func testStaleLiveAndCleanup() throws {
        // A stale socket (bound, nobody listening any more) is replaced.
        XCTAssertEqual(vf_private_directory(dir), 0)
        let stale = vf_unix_listen(dir + "/t.sock", 1)
        XCTAssertGreaterThanOrEqual(stale, 0)
        _ = vf_close(stale)
        let s = try makeServer()
        XCTAssertEqual(try StatusClient.request("show", path: s.path), "state=fine\n\n")
        // A live one is not taken over.
        XCTAssertThrowsError(try StatusServer(path: dir + "/t.sock", allowedUID: getuid())) { e in
            guard case StatusServerError.alreadyRunning = e else { return XCTFail("\(e)") }
        }
        XCTAssertEqual(try StatusClient.request("show", path: s.path), "state=fine\n\n", "still serving")
        s.stop()
        XCTAssertNotEqual(access(dir + "/t.sock", F_OK), 0, "socket removed on stop")
        XCTAssertThrowsError(try StatusClient.request("show", path: dir + "/t.sock")) { e in
            guard case StatusClient.Failure.connect(_, let errno) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(errno, ENOENT)
        }
    }

    func testOtherUserRefused() throws {
        // Connections from a user other than the allowed one get an error answer (here: allow only uid+1).
        let s = try StatusServer(path: dir + "/t.sock", allowedUID: getuid() &+ 1, clientTimeoutMs: 300)
        s.start { _ in "state=fine\n\n" }
        defer { s.stop() }
        XCTAssertThrowsError(try StatusProtocol.decode(try StatusClient.request("show", path: s.path))) { e in
            XCTAssertEqual(e as? StatusProtocolError, .remote("permission denied (the control socket answers root only)"))
        }
    }

    func testIdlePeerStatsAreSmall() {
        let stats = (0..<1000).map { _ in PeerStats() }
        var heap = 0
        for s in stats {
            heap += Int(vf_test_heap_block_size(Unmanaged.passUnretained(s).toOpaque()))
            XCTAssertNil(s.sojournSnapshot(), "no histogram before the first dequeue")
        }
        // The object plus its counter array (one UInt64 per PeerStat).
        let perPeer = heap / stats.count + PeerStat.allCases.count * 8
        XCTAssertLessThanOrEqual(perPeer, 256, "idle peer stats: \(perPeer) bytes")
    }
}
