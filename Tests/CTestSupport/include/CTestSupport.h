// C helpers that only tests use (never linked into vpnfast).
#ifndef VPNFAST_CTESTSUPPORT_H
#define VPNFAST_CTESTSUPPORT_H

/// Moves the calling thread into a new, empty network namespace (unshare(CLONE_NEWNET)) and brings its loopback
/// interface up. Sockets the thread creates afterwards live in that namespace, whichever thread uses them later.
/// Returns 0 or -errno (-EPERM without CAP_SYS_ADMIN).
int vf_test_enter_private_netns(void);

/// Bytes the allocator really holds for a heap block (malloc_usable_size; <malloc.h> is not in Swift's Glibc).
unsigned long vf_test_heap_block_size(void *block);

#endif
