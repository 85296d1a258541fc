// Helpers shared by the two UDP backends (udp.c: recvmmsg/sendmmsg, uring.c: io_uring). Private to CShims:
// Swift never sees this header.
#ifndef VPNFAST_UDP_INTERNAL_H
#define VPNFAST_UDP_INTERNAL_H
#include "CShims.h"
#include <sys/socket.h>

#define VF_HIDDEN __attribute__((visibility("hidden")))

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

/// Control space per send message: a UDP_SEGMENT cmsg (a u16) and an IP_TOS / IPV6_TCLASS cmsg (an int).
enum { VF_SEND_CONTROL_BYTES = 64 };
/// Largest payload of one segmented send (UDP caps a datagram at 65535 including headers).
enum { VF_GSO_MAX_BYTES = 65000 };

/// A source address from the kernel as an endpoint (IPv4 becomes v4-mapped).
VF_HIDDEN void vf_addr_to_endpoint(const struct sockaddr_storage *s, vf_endpoint *e);
/// An endpoint as a destination address for a socket of `family`. Returns the address length.
VF_HIDDEN socklen_t vf_endpoint_to_addr(int family, const vf_endpoint *e, struct sockaddr_storage *s);

/// Reads what vpnfast asks the kernel for from one received control message: the UDP_GRO segment size, the
/// outer TOS / traffic class, the SO_TIMESTAMPNS stamp (ns). Fields not carried by `c` are left alone.
VF_HIDDEN void vf_cmsg_parse(const struct cmsghdr *c, uint16_t *gro, uint8_t *tos, uint64_t *stamp);

/// Groups datagrams [0, count) into send messages. With `gso`, a run of consecutive datagrams to the same
/// endpoint (address, port and flow label) and TOS whose lengths equal the first one's (the last may be shorter), at most `max_segments` of them and
/// VF_GSO_MAX_BYTES in all, is one message; without, each datagram is its own message. Writes each message's
/// datagram count to group_size[] and returns the number of messages, at most `max_groups` (datagrams beyond
/// those are not planned).
VF_HIDDEN unsigned int vf_gso_plan(const uint32_t *lens, const vf_endpoint *to, const uint8_t *tos,
                                   unsigned int count, int gso, unsigned int max_segments, unsigned int max_groups,
                                   uint16_t *group_size);

/// Fills one send message for `segments` datagrams starting at bufs[0]/lens[0], all to `to`: the iovecs go to
/// iov[0..<segments], the address to *addr, and with more than one segment a UDP_SEGMENT cmsg (segment size
/// lens[0]) to `control` (VF_SEND_CONTROL_BYTES, 8-aligned), followed by a TOS cmsg when `tos` is non-zero.
VF_HIDDEN void vf_fill_send_msghdr(struct msghdr *h, int family, const vf_endpoint *to, uint8_t tos,
                                   struct sockaddr_storage *addr, struct iovec *iov, void *const *bufs,
                                   const uint32_t *lens, unsigned int segments, unsigned char *control);

#endif
