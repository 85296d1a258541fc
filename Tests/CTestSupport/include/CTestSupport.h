// C helpers that only tests use (never linked into vpnfast).
#ifndef VPNFAST_CTESTSUPPORT_H
#define VPNFAST_CTESTSUPPORT_H
#include <stdint.h>

/// Moves the calling thread into a new, empty network namespace (unshare(CLONE_NEWNET)) and brings its loopback
/// interface up. Sockets the thread creates afterwards live in that namespace, whichever thread uses them later.
/// Returns 0 or -errno (-EPERM without CAP_SYS_ADMIN).
int vf_test_enter_private_netns(void);

/// Gives interface `name` the IPv4 address `address` (host order) with a /`prefix` route and brings it up, in the
/// calling thread's network namespace. Returns 0 or -errno.
int vf_test_ifup4(const char *name, uint32_t address, int prefix);

/// Sets UDP_SEGMENT (UDP GSO) on a UDP socket: every send of more than `segment_size` bytes leaves as segments.
int vf_test_udp_segment(int fd, int segment_size);

/// Bytes the allocator really holds for a heap block (malloc_usable_size; <malloc.h> is not in Swift's Glibc).
unsigned long vf_test_heap_block_size(void *block);

#endif
