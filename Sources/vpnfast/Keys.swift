// `vpnfast genkey` and `vpnfast pubkey`, byte-compatible with `wg genkey` and `wg pubkey`.
import ArgumentParser
import Crypto

struct GenKey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "genkey",
        abstract: "Print a new random private key (base64), like `wg genkey`.")

    func run() throws {
        print(X25519.generatePrivateKey().base64)
    }
}

struct PubKey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pubkey",
        abstract: "Read a private key (base64) on standard input and print its public key, like `wg pubkey`.")

    func run() throws {
        var text = ""
        while let line = readLine(strippingNewline: false) {
            text += line
            if text.count > 4096 { break }
        }
        let trimmed = text.trimmingCharacters(in: [" ", "\t", "\n", "\r"])
        guard let key = SecretKey(base64: trimmed) else {
            throw ValidationError("standard input is not a base64 private key (44 characters decoding to 32 bytes)")
        }
        print(X25519.publicKey(for: key).base64)
    }
}

extension String {
    func trimmingCharacters(in set: Set<Character>) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}
