// CShims: the thin C layer between vpnfast and the kernel. Every symbol is prefixed vf_.
// Functions return >= 0 on success and -errno on failure, so Swift never reads errno after ARC could run.
#ifndef VPNFAST_CSHIMS_H
#define VPNFAST_CSHIMS_H
#include <stdint.h>
#include <stddef.h>
#include <netinet/in.h>
#include <sys/uio.h>

// ---- TUN (tun.c) ----
/// Opens /dev/net/tun as IFF_TUN|IFF_NO_PI (|IFF_VNET_HDR if vnet_hdr), non-blocking, close-on-exec.
/// `name` is the requested name (may be empty for a kernel-chosen one); the final name is written to
/// `out_name` (at least 16 bytes). Returns the fd or -errno.
int vf_tun_open(const char *name, char *out_name, int vnet_hdr);
/// TUNSETOFFLOAD with the given TUN_F_* bits. Returns 0 or -errno (EINVAL for bits the kernel lacks).
int vf_tun_set_offload(int fd, unsigned int flags);
/// Enables the offloads vpnfast can split and coalesce: CSUM|TSO4|TSO6, plus USO4|USO6 where the kernel knows
/// them. Returns the TUN_F_* bits in effect (0 if the kernel refused even the base set).
unsigned int vf_tun_enable_offloads(int fd);
/// TUN_F_* bits, mirrored for Swift.
enum { VF_TUN_F_CSUM = 0x01, VF_TUN_F_TSO4 = 0x02, VF_TUN_F_TSO6 = 0x04, VF_TUN_F_USO4 = 0x20, VF_TUN_F_USO6 = 0x40 };
/// Gathers `count` slices into one packet write. Returns the length written, or -errno.
long vf_writev(int fd, const struct iovec *iov, int count);
/// Reads one packet. Returns the length, or -errno (-EAGAIN when empty).
long vf_read(int fd, void *buf, size_t len);
/// Reads one packet of at most `len` bytes. Returns its length; -EMSGSIZE for a longer packet (consumed, cut, not
/// stored in full); or -errno (-EAGAIN when empty).
long vf_read_packet(int fd, void *buf, size_t len);
/// Writes one packet. Returns the length written, or -errno.
long vf_write(int fd, const void *buf, size_t len);

// ---- UDP (udp.c) ----
/// A socket address as vpnfast stores it: always IPv6 layout, IPv4 peers as v4-mapped (::ffff:a.b.c.d).
typedef struct sockaddr_in6 vf_endpoint;

/// Opens a UDP socket bound to `port` (0: kernel's choice) on all addresses. Tries a dual-stack AF_INET6 socket
/// first and falls back to AF_INET when IPv6 is unavailable (*out_family tells which). Non-blocking, close-on-exec,
/// with receive/send buffers of `buffer_bytes` (forced when root). Writes the bound port to *out_port.
int vf_udp_open(uint16_t port, int buffer_bytes, uint16_t *out_port, int *out_family);

/// Receive metadata, outer header side: every received message reports its TOS / traffic class byte (tos[i])
/// and the kernel's receive timestamp in CLOCK_REALTIME nanoseconds (stamp[i], 0 if absent); vf_udp_open turns
/// on SO_TIMESTAMPNS, IP_RECVTOS and IPV6_RECVTCLASS. Sends take a TOS byte per datagram (tos may be NULL: 0),
/// sent as an IP_TOS or IPV6_TCLASS control message when non-zero; segmented runs never mix TOS values.

/// Turns on UDP_GRO (receive coalescing). Returns 0 or -errno.
int vf_udp_enable_gro(int fd);
/// 1 if the kernel knows UDP_SEGMENT (send segmentation) on this socket, else 0.
int vf_udp_probe_gso(int fd);

/// Preallocated recvmmsg/sendmmsg state for up to `capacity` messages (mmsghdr, iovec, sockaddr, control arrays).
typedef struct vf_mmsg vf_mmsg;
vf_mmsg *vf_mmsg_create(unsigned int capacity, int family);
void vf_mmsg_destroy(vf_mmsg *m);
/// Receives up to `count` messages into bufs[i] (capacity caps[i]). Lengths go to lens[i], sources to from[i]
/// (v4-mapped for IPv4), truncated[i] is set to 1 when a message did not fit, and gso[i] to the UDP_GRO segment
/// size when the kernel coalesced several datagrams into message i (0: a single datagram). Returns the number
/// received (never 0), or -errno (-EAGAIN when nothing is queued).
int vf_mmsg_recv(vf_mmsg *m, int fd, void *const *bufs, const uint32_t *caps, uint32_t *lens,
                 vf_endpoint *from, uint8_t *truncated, uint16_t *gso, uint8_t *tos, uint64_t *stamp,
                 unsigned int count);
/// Sends `count` datagrams bufs[i][0..<lens[i]] to to[i]. With *gso set, runs of consecutive datagrams to the
/// same endpoint (and flow label) with equal lengths (the last may be shorter) go out as one UDP_SEGMENT message
/// of at most `max_segments`; if the kernel answers EIO, *gso is cleared and the send is retried without it.
/// Returns how many datagrams the kernel took (it may take fewer), or -errno if none was sent.
int vf_mmsg_send(vf_mmsg *m, int fd, void *const *bufs, const uint32_t *lens, const vf_endpoint *to,
                 const uint8_t *tos, unsigned int count, int *gso, unsigned int max_segments);
/// One datagram, for control messages (handshakes, cookies). Returns the length or -errno.
long vf_udp_sendto(int fd, int family, const void *buf, size_t len, const vf_endpoint *to, uint8_t tos);

/// --flowlabel (flowlabel.c): turns on IPV6_FLOWINFO_SEND and leases up to `count` flow labels (chosen by the
/// kernel, shareable) for destination `dst16` (16 bytes, not unspecified or v4-mapped), writing them host-order to
/// labels[]. Returns how many were leased; when fewer than `count`, *first_error says why (an errno). With none
/// leased IPV6_FLOWINFO_SEND is turned off again. A send's label is the endpoint's sin6_flowinfo (network order).
int vf_udp_lease_flowlabels(int fd, const uint8_t *dst16, uint32_t *labels, unsigned int count, int *first_error);

/// Builds an endpoint from 4 network-order IPv4 bytes (v4-mapped) or 16 IPv6 bytes, and a host-order port.
void vf_endpoint_set_v4(vf_endpoint *e, const uint8_t *addr4, uint16_t port);
void vf_endpoint_set_v6(vf_endpoint *e, const uint8_t *addr16, uint16_t port);
/// 1 if the endpoint is v4-mapped. The address bytes are at e->sin6_addr.
int vf_endpoint_is_v4(const vf_endpoint *e);
uint16_t vf_endpoint_port(const vf_endpoint *e);

// ---- io_uring UDP backend (uring.c) ----
/// 1 if this process can create an io_uring and the kernel has what the io_uring backend uses (RECVMSG,
/// SENDMSG, READ opcodes, provided buffer rings, multishot recvmsg), else 0. Either way a one-line explanation
/// goes to `reason` (NUL-terminated, at most `reason_len` bytes) for the log: why not (sysctl
/// kernel.io_uring_disabled, seccomp, old kernel), or which optional setup flags work.
int vf_uring_probe(char *reason, size_t reason_len);

/// The receiving side: a ring with a multishot recvmsg on `fd` (socket family `family`) over a ring of
/// `buffers` provided buffers (a power of two) of `payload_bytes` each, and a read of `wake_fd` (an eventfd).
/// The ring is created disabled and belongs to the first thread that receives; if another thread receives
/// later, the ring is rebuilt for it. On failure returns NULL with -errno in *err.
typedef struct vf_uring_rx vf_uring_rx;
vf_uring_rx *vf_uring_rx_create(int fd, int family, int wake_fd, unsigned int buffers, unsigned int payload_bytes,
                                int *err);
void vf_uring_rx_destroy(vf_uring_rx *r);
/// Receives up to `count` messages, with the same outputs as vf_mmsg_recv: each payload is copied to bufs[i]
/// (capacity caps[i]; a larger message is reported with truncated[i] = 1 and not copied) and its provided buffer
/// goes back to the kernel at once. Waits up to timeout_ms (-1: forever) for the first message. Returns the
/// number of messages, 0 on timeout, interruption or a wake-up through wake_fd, or -errno.
int vf_uring_rx_recv(vf_uring_rx *r, void *const *bufs, const uint32_t *caps, uint32_t *lens, vf_endpoint *from,
                     uint8_t *truncated, uint16_t *gso, uint8_t *tos, uint64_t *stamp, unsigned int count,
                     int timeout_ms);

/// The sending side: a ring for up to `capacity` datagrams per call. Callers serialize (one call at a time).
typedef struct vf_uring_tx vf_uring_tx;
vf_uring_tx *vf_uring_tx_create(int fd, int family, unsigned int capacity, int *err);
void vf_uring_tx_destroy(vf_uring_tx *t);
/// Sends `count` datagrams with the grouping of vf_mmsg_send (one SENDMSG per group, all submitted at once).
/// EIO with *gso set clears *gso and resends without segmentation; a group the kernel refuses loses its first
/// datagram (positive errno in *last_error) and the rest are sent again; EAGAIN/ENOBUFS wait 1 ms and retry.
/// Returns how many datagrams were sent, or -errno if the ring itself failed.
int vf_uring_tx_send(vf_uring_tx *t, void *const *bufs, const uint32_t *lens, const vf_endpoint *to,
                     const uint8_t *tos, unsigned int count, int *gso, unsigned int max_segments, int *last_error);

// ---- io_uring TUN backend (tun_uring.c) ----
/// 1 if reads of `tun_fd` (an idle TUN, before it is up) can go through io_uring without blocking an io-wq
/// worker, else 0; a one-line explanation goes to `reason` either way.
int vf_tun_uring_probe(int tun_fd, char *reason, size_t reason_len);

/// The reading side: `slots` READs of up to `slot_bytes` each stay armed on `tun_fd`, plus a read of `wake_fd`.
/// The ring is created by the first vf_tun_rx_wait, on the thread that then owns it.
typedef struct vf_tun_rx vf_tun_rx;
vf_tun_rx *vf_tun_rx_create(int tun_fd, int wake_fd, unsigned int slots, unsigned int slot_bytes, int *err);
void vf_tun_rx_destroy(vf_tun_rx *r);
/// Submits the reads not armed and takes up to `max` completions, in the order the packets were read: slot
/// slots[i] holds results[i] bytes (or results[i] = -errno, and the slot is free again). A slot with data is the
/// caller's until vf_tun_rx_release. Waits up to timeout_ms (0: not at all, -1: forever) when nothing is ready.
/// Returns the number of completions, 0 on timeout or a wake-up through wake_fd, or -errno if the ring failed.
int vf_tun_rx_wait(vf_tun_rx *r, int timeout_ms, uint32_t *slots, int32_t *results, unsigned int max);
void *vf_tun_rx_buffer(vf_tun_rx *r, unsigned int slot);
void vf_tun_rx_release(vf_tun_rx *r, unsigned int slot);

/// The writing side: up to `entries` WRITEVs per io_uring_enter. The ring is created by the first write.
typedef struct vf_tun_tx vf_tun_tx;
vf_tun_tx *vf_tun_tx_create(int tun_fd, unsigned int entries, int *err);
void vf_tun_tx_destroy(vf_tun_tx *t);
/// Writes `count` packets: packet w is iov[first[w] ..< first[w] + iovcnt[w]]; results[w] is its byte count or
/// -errno. Returns 0, or -errno if the ring failed (results then undefined).
int vf_tun_tx_writev(vf_tun_tx *t, const struct iovec *iov, const uint32_t *first, const uint32_t *iovcnt,
                     unsigned int count, int32_t *results);

// ---- Wakeups and polling (poll.c) ----
int vf_eventfd(void);
int vf_eventfd_signal(int fd);
int vf_eventfd_drain(int fd);
/// Waits until fd is readable or wake_fd is signalled or timeout_ms passes (-1: forever).
/// Returns bit 1 for fd readable, bit 2 for wake_fd, 0 on timeout, or -errno.
int vf_poll2(int fd, int wake_fd, int timeout_ms);
int vf_close(int fd);

// ---- Unix sockets and namespaces (unix.c): the control socket of `vpnfast show` ----
/// A listening AF_UNIX stream socket at `path` (mode 0600), close-on-exec. Returns the fd or -errno
/// (-EADDRINUSE if the path exists, -ENAMETOOLONG if it does not fit sun_path).
int vf_unix_listen(const char *path, int backlog);
/// Connects to `path` with send/receive timeouts of timeout_ms (connect included). Returns the fd or -errno.
int vf_unix_connect(const char *path, int timeout_ms);
/// accept4 with close-on-exec. Returns the connection's fd or -errno.
int vf_unix_accept(int fd);
/// SO_RCVTIMEO and SO_SNDTIMEO of timeout_ms. Returns 0 or -errno.
int vf_socket_timeouts(int fd, int timeout_ms);
/// The user id of the process at the other end of a connected Unix socket (SO_PEERCRED), or -errno.
long vf_peer_uid(int fd);
/// Makes `path` a directory of mode 0700 owned by the effective user (creating it if needed; a symlink or a
/// directory owned by someone else is refused with -ENOTDIR / -EPERM). Returns 0 or -errno.
int vf_private_directory(const char *path);
/// The inode of /proc/PID/ns/net (pid 0: this process), which names its network namespace; or -errno.
long long vf_netns_inode(int pid);
int vf_unlink(const char *path);
/// send() with MSG_NOSIGNAL (a client that went away gives -EPIPE, not SIGPIPE). Returns bytes sent or -errno.
long vf_send(int fd, const void *buf, size_t len);

// ---- Time and threads (sys.c) ----
uint64_t vf_monotonic_ns(void);
uint64_t vf_realtime_ns(void);
/// Sleeps about `ns` nanoseconds (less if a signal arrives).
void vf_sleep_ns(uint64_t ns);
/// Blocks SIGINT, SIGTERM, SIGUSR1 in the calling thread (call before starting threads, so they inherit it),
/// then returns a signalfd for those signals, or -errno.
int vf_signalfd_setup(void);
/// Reads one signal from the signalfd; returns its number or -errno.
int vf_signalfd_read(int fd);
/// Names the calling thread (at most 15 characters).
void vf_thread_set_name(const char *name);
/// CPU affinity of the calling thread (pthread_{set,get}affinity_np). `mask` is `bytes` bytes (a multiple of 8) of
/// 64-bit words, bit n for CPU n. Return 0 or -errno: EINVAL on get means the mask is shorter than the kernel's CPU
/// count; on set, that the mask holds no CPU this thread may use.
int vf_thread_set_affinity(const uint64_t *mask, size_t bytes);
int vf_thread_get_affinity(uint64_t *mask, size_t bytes);

// ---- Helper programs (spawn.c) ----
/// Runs the program at `path` with `argv` (NULL-terminated; argv[0] its name), stdin and stdout on /dev/null,
/// waits for it and sets *status to its exit status (128 + signal if a signal ended it). Its standard error is
/// kept in `err` (NUL-terminated, cut to err_len - 1 bytes). Returns 0, or -errno if it could not be started.
int vf_run(const char *path, char *const argv[], char *err, size_t err_len, int *status);

// ---- Atomic counters (inline: used on the data path, per batch) ----
static inline void vf_counter_add(uint64_t *p, uint64_t v) { __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
static inline uint64_t vf_counter_load(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void vf_counter_store(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline uint64_t vf_counter_fetch_add(uint64_t *p, uint64_t v) {
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
/// Adds for a counter with a single writer thread: a relaxed load and store (no locked read-modify-write);
/// other threads may read it with vf_counter_load at any time.
static inline void vf_counter_bump(uint64_t *p, uint64_t v) {
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

// ---- Cache hints (inline: per packet on the send path) ----
/// Asks for the cache line holding p, to be written soon (a hint: never faults, whatever p is).
static inline void vf_prefetch_write(const void *p) { __builtin_prefetch(p, 1, 3); }
/// Asks for the cache line holding p, to be read soon (a hint, as above).
static inline void vf_prefetch_read(const void *p) { __builtin_prefetch(p, 0, 3); }

// The Internet checksum's folded sum of `length` bytes (big-endian 16-bit value, not complemented), and a copy
// that returns the same sum of what it copied (csum.c). The _baseline variants skip the AVX2 code (for tests).
uint16_t vf_csum(const void *data, size_t length);
uint16_t vf_copy_csum(void *dst, const void *src, size_t length);
uint16_t vf_csum_baseline(const void *data, size_t length);
uint16_t vf_copy_csum_baseline(void *dst, const void *src, size_t length);

#endif
