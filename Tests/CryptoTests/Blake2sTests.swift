import XCTest
@testable import Crypto

final class Blake2sTests: XCTestCase {
    /// RFC 7693 Appendix B ("abc") and the unkeyed empty-input value (also checked with CPython hashlib).
    let hashes: [(String, [UInt8], String)] = [
        ("empty", [], "69217a3079908094e11121d042354a7c1f55b6482ca1a51e1b250dfd1ed0eef9"),
        ("abc", Array("abc".utf8), "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982"),
    ]

    func testHash() {
        for (name, input, expected) in hashes {
            XCTAssertEqual(hexString(Blake2s.hash(input)), expected, name)
            XCTAssertEqual(hexString(Blake2s.hash(parts: [input])), expected, name)
        }
        XCTAssertEqual(hexString(Blake2s.hash()), hashes[0].2)
    }

    func testHashOfPartsIsHashOfConcatenation() {
        let data = SecureRandom.bytes(300)
        let whole = Blake2s.hash(data)
        XCTAssertEqual(Blake2s.hash(Array(data[..<64]), Array(data[64...])), whole)      // block boundary
        XCTAssertEqual(Blake2s.hash(Array(data[..<1]), [], Array(data[1..<129]), Array(data[129...])), whole)
        XCTAssertEqual(Blake2s.hash(parts: data.map { [$0] }), whole)
    }

    /// Keyed BLAKE2s, key 00..1f. The first two are from the official blake2s-kat; the rest were
    /// computed with CPython's hashlib.blake2s.
    let macs: [(String, [UInt8], [UInt8], Int, String)] = [
        ("KAT, empty input", sequence(32), [], 32, "48a8997da407876b3d79c0d92325ad3b89cbb754d86ab71aee047ad345fd2c49"),
        ("KAT, input 00", sequence(32), [0], 32, "40d15fee7c328830166ac3f918650f807e7e01e177258cdc0a39b11f598066f1"),
        ("input 00..fe", sequence(32), sequence(255), 32, "3fb735061abc519dfe979e54c1ee5bfad0a9d858b3315bad34bde999efd724dd"),
        ("16-byte output", sequence(32), sequence(64), 16, "f1efa90d2547036841ecd3627fafbc36"),
        ("1-byte key, 16-byte output", Array("k".utf8), Array("abc".utf8), 16, "f335237426ff5582d0c607ef240684b5"),
    ]

    func testKeyedMAC() {
        for (name, key, input, length, expected) in macs {
            XCTAssertEqual(hexString(Blake2s.mac(key: key, data: input, outputLength: length)), expected, name)
            let fromPointer = input.withUnsafeBytes { Blake2s.mac(key: key, data: $0, outputLength: length) }
            XCTAssertEqual(hexString(fromPointer), expected, name)
        }
    }

    /// HMAC-BLAKE2s-256, computed with CPython's hmac over hashlib.blake2s (an independent
    /// implementation). Keys cover empty, short, exactly one block, one block plus one (hashed first).
    let hmacs: [(String, [UInt8], [UInt8], String)] = [
        ("empty key and data", [], [], "eaf4bb25938f4d20e72656bbbc7a9bf63c0c18537333c35bdb67db1402661acd"),
        ("quick brown fox", Array("key".utf8), Array("The quick brown fox jumps over the lazy dog".utf8),
         "f93215bb90d4af4c3061cd932fb169fb8bb8a91d0b4022baea1271e1323cd9a0"),
        ("32-byte key", sequence(32), Array("abc".utf8), "82623be5bc0a391b24dce53e67d028eff92d586de0485ac37822e597d049c74f"),
        ("64-byte key", sequence(64), Array("abc".utf8), "3a0ef09eac123871fb79852ec512086d013abff437bd68ca03630932bd6ba81f"),
        ("65-byte key", sequence(65), Array("abc".utf8), "44d87b3939dec16bc76cbd83e3982ac0a4eafab8a5b87c8c2adbd0da7d5c9695"),
        ("100-byte key", sequence(100), Array("abc".utf8), "c1b751501db12b753069a918627b623179be55c8cc7ca5c4e14bdf32274ac656"),
    ]

    func testHMAC() {
        for (name, key, data, expected) in hmacs {
            XCTAssertEqual(hexString(Blake2s.hmac(key: key, data: data)), expected, name)
            let fromPointer = data.withUnsafeBytes { Blake2s.hmac(key: key, data: $0) }
            XCTAssertEqual(hexString(fromPointer), expected, name)
        }
    }

    /// wireguard-go device/kdf_test.go: (key, input) -> t0, t1, t2.
    let kdfs: [(String, String, [String])] = [
        ("746573742d6b6579", "746573742d696e707574", [
            "6f0e5ad38daba1bea8a0d213688736f19763239305e0f58aba697f9ffc41c633",
            "df1194df20802a4fe594cde27e92991c8cae66c366e8106aaa937a55fa371e8a",
            "fac6e2745a325f5dc5d11a5b165aad08b0ada28e7b4e666b7c077934a4d76c24"]),
        ("776972656775617264", "776972656775617264", [
            "491d43bbfdaa8750aaf535e334ecbfe5129967cd64635101c566d4caefda96e8",
            "1e71a379baefd8a79aa4662212fcafe19a23e2b609a3db7d6bcba8f560e3d25f",
            "31e1ae48bddfbe5de38f295e5452b1909a1b4e38e183926af3780b0c1e1f0160"]),
        ("", "", [
            "8387b46bf43eccfcf349552a095d8315c4055beb90208fb1be23b894bc2ed5d0",
            "58a0e5f6faefccf4807bff1f05fa8a9217945762040bcec2f4b4a62bdfe0e86e",
            "0ce6ea98ec548f8e281e93e32db65621c45eb18dc6f0a7ad94178610a2f7338e"]),
    ]

    func testKDF() {
        for (key, input, outputs) in kdfs {
            for count in 1...3 {
                let got = Blake2s.kdf(key: hex(key), input: hex(input), count: count).map(hexString)
                XCTAssertEqual(got, Array(outputs.prefix(count)), "KDF\(count) key \(key)")
            }
        }
    }

    /// The KDF is the HMAC chain it claims to be.
    func testKDFIsTheHMACChain() {
        let key = SecureRandom.bytes(32)
        let input = SecureRandom.bytes(32)
        let prk = Blake2s.hmac(key: key, data: input)
        let t1 = Blake2s.hmac(key: prk, data: [1])
        let t2 = Blake2s.hmac(key: prk, data: t1 + [2])
        let t3 = Blake2s.hmac(key: prk, data: t2 + [3])
        XCTAssertEqual(Blake2s.kdf(key: key, input: input, count: 3), [t1, t2, t3])
    }
}
