// The 10-byte `virtio_net_hdr` that precedes every packet on a TUN opened with IFF_VNET_HDR
// (include/uapi/linux/virtio_net.h). TUN uses the host's byte order unless TUNSETVNETLE/BE says otherwise,
// so the 16-bit fields are read and written in native order.

public struct VirtioNetHeader: Equatable, Sendable {
    public static let size = 10

    /// Flag: the L4 checksum must be completed: sum [checksumStart, end) over a field pre-seeded with the
    /// pseudo-header sum and store it at checksumStart + checksumOffset.
    public static let needsChecksum: UInt8 = 1
    /// Flag: the checksums were already verified.
    public static let dataValid: UInt8 = 2

    /// Segmentation types. The ECN bit (0x80) is never negotiated with TUNSETOFFLOAD, so a header carrying it
    /// is malformed; UFO (`udp`) is not negotiated either.
    public enum GSOType: UInt8, Sendable {
        case none = 0, tcpV4 = 1, udp = 3, tcpV6 = 4, udpL4 = 5
    }

    public var flags: UInt8
    public var gsoType: UInt8
    /// IP + L4 header length (on reads only a hint from the kernel).
    public var headerLength: UInt16
    /// Payload bytes per segment.
    public var gsoSize: UInt16
    /// Offset of the L4 header, where the checksum starts.
    public var checksumStart: UInt16
    /// Offset of the checksum field from `checksumStart`: 16 for TCP, 6 for UDP.
    public var checksumOffset: UInt16

    /// An all-zero header: a plain packet, checksums complete.
    public init() {
        flags = 0; gsoType = 0; headerLength = 0; gsoSize = 0; checksumStart = 0; checksumOffset = 0
    }

    public init(flags: UInt8, gsoType: GSOType, headerLength: UInt16, gsoSize: UInt16,
                checksumStart: UInt16, checksumOffset: UInt16) {
        self.flags = flags
        self.gsoType = gsoType.rawValue
        self.headerLength = headerLength
        self.gsoSize = gsoSize
        self.checksumStart = checksumStart
        self.checksumOffset = checksumOffset
    }

    @inline(__always)
    public init(reading p: UnsafeRawPointer) {
        flags = p.load(fromByteOffset: 0, as: UInt8.self)
        gsoType = p.load(fromByteOffset: 1, as: UInt8.self)
        headerLength = p.loadUnaligned(fromByteOffset: 2, as: UInt16.self)
        gsoSize = p.loadUnaligned(fromByteOffset: 4, as: UInt16.self)
        checksumStart = p.loadUnaligned(fromByteOffset: 6, as: UInt16.self)
        checksumOffset = p.loadUnaligned(fromByteOffset: 8, as: UInt16.self)
    }

    @inline(__always)
    public func write(to p: UnsafeMutableRawPointer) {
        p.storeBytes(of: flags, toByteOffset: 0, as: UInt8.self)
        p.storeBytes(of: gsoType, toByteOffset: 1, as: UInt8.self)
        p.storeBytes(of: headerLength, toByteOffset: 2, as: UInt16.self)
        p.storeBytes(of: gsoSize, toByteOffset: 4, as: UInt16.self)
        p.storeBytes(of: checksumStart, toByteOffset: 6, as: UInt16.self)
        p.storeBytes(of: checksumOffset, toByteOffset: 8, as: UInt16.self)
    }

    /// The segmentation type, or nil for a value we do not know (including the ECN bit).
    @inline(__always)
    public var gso: GSOType? { GSOType(rawValue: gsoType) }
}
