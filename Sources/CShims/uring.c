// The io_uring UDP backend.
//   receive: one ring per receiving thread. A multishot RECVMSG takes datagrams into a ring of provided buffers;
//            each completion is parsed (io_uring_recvmsg_out, source address, UDP_GRO cmsg), its payload copied
//            to the caller's buffer and the provided buffer handed back at once. A READ of the wake eventfd sits
//            beside it, so wake() ends a wait. The multishot is armed again whenever a completion lacks
//            IORING_CQE_F_MORE (buffers ran out: ENOBUFS, or the kernel ended it).
//   send:    the GSO groups of vf_gso_plan (udp.c) as one SENDMSG each, all submitted in one io_uring_enter.
// Both rings use the socket as registered file 0.
#include "udp_internal.h"
#include <liburing.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum {
    VF_FILE_SOCKET = 0,          /* registered file indexes */
    VF_FILE_WAKE = 1,
    VF_RX_BGID = 0,              /* the receive ring's buffer group */
    VF_RX_NAME_BYTES = 32,       /* sockaddr_in6 (28) rounded up, so the cmsgs that follow are 8-aligned */
    VF_RX_CONTROL_BYTES = 128,   /* UDP_GRO (24) + SO_TIMESTAMPNS (32) + IP_TOS or IPV6_TCLASS (24) */
    VF_RX_SQ_ENTRIES = 8,        /* only the recvmsg and the wake read are ever queued */
};

/* user_data of the receive ring's requests */
enum { VF_TAG_RECV = 1, VF_TAG_WAKE = 2 };

/* Setup flags, best first; a kernel that does not know a flag answers EINVAL and the next set is tried.
   DEFER_TASKRUN runs completion work only when the owner waits, so a busy receiver is not interrupted. */
static const unsigned int rx_flag_sets[] = {
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
    IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
    0,
};
static const unsigned int tx_flag_sets[] = {
    IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
    IORING_SETUP_SUBMIT_ALL,
    0,
};

static int ring_init(struct io_uring *ring, unsigned int entries, unsigned int cq_entries,
                     const unsigned int *flag_sets, size_t sets, unsigned int extra) {
    int rc = -EINVAL;
    for (size_t i = 0; i < sets; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = flag_sets[i] | extra | (cq_entries ? IORING_SETUP_CQSIZE : 0);
        p.cq_entries = cq_entries;
        rc = io_uring_queue_init_params(entries, ring, &p);
        if (rc != -EINVAL) return rc;
    }
    return rc;
}

static void *map_zeroed(size_t bytes) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* ---- probe ---- */

static void describe_setup_error(int rc, char *reason, size_t len) {
    if (rc == -EPERM) {
        char v[8] = {0};
        int fd = open("/proc/sys/kernel/io_uring_disabled", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t n = read(fd, v, sizeof v - 1);
            close(fd);
            if (n < 0) v[0] = 0;
        }
        if (v[0] == '2')
            snprintf(reason, len, "io_uring is disabled by sysctl kernel.io_uring_disabled=2");
        else if (v[0] == '1')
            snprintf(reason, len, "io_uring is limited by sysctl kernel.io_uring_disabled=1 and this process is not "
                                  "in kernel.io_uring_group");
        else
            snprintf(reason, len, "io_uring_setup: permission denied (a seccomp filter or container policy?)");
    } else if (rc == -ENOSYS) {
        snprintf(reason, len, "io_uring_setup is not available (kernel without io_uring, or blocked by seccomp)");
    } else {
        snprintf(reason, len, "io_uring_setup: %s", strerror(-rc));
    }
}

enum { VF_PROBE_ENTRIES = 2, VF_PROBE_BYTES = 256 };

/* Registers a two-entry buffer ring (br: one zeroed page, bufs: VF_PROBE_ENTRIES * VF_PROBE_BYTES) and arms a
   multishot recvmsg on a local datagram socketpair: the kernel must take a message into a provided buffer and
   keep the request armed (IORING_CQE_F_MORE). Returns 0, or -errno with *stage set. The caller frees the memory
   after the ring is gone. */
static int probe_multishot(struct io_uring *ring, struct io_uring_buf_ring *br, unsigned char *bufs,
                           const char **stage) {
    enum { BGID = 7, ENTRIES = VF_PROBE_ENTRIES, BYTES = VF_PROBE_BYTES };
    int rc, sv[2] = { -1, -1 };
    *stage = "register a provided buffer ring (Linux 5.19)";
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (unsigned long)(uintptr_t)br;
    reg.ring_entries = ENTRIES;
    reg.bgid = BGID;
    io_uring_buf_ring_init(br);
    rc = io_uring_register_buf_ring(ring, &reg, 0);
    if (rc < 0) goto out;
    for (int i = 0; i < ENTRIES; i++)
        io_uring_buf_ring_add(br, bufs + i * BYTES, BYTES, (unsigned short)i, io_uring_buf_ring_mask(ENTRIES), i);
    io_uring_buf_ring_advance(br, ENTRIES);

    *stage = "multishot recvmsg (Linux 6.0)";
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) { rc = -errno; goto out; }
    struct msghdr m;
    memset(&m, 0, sizeof m);
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (!sqe) { rc = -EBUSY; goto out; }
    io_uring_prep_recvmsg_multishot(sqe, sv[0], &m, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    io_uring_sqe_set_data64(sqe, 1);
    rc = io_uring_submit(ring);
    if (rc < 0) goto out;
    if (send(sv[1], "x", 1, 0) != 1) { rc = -errno; goto out; }
    struct __kernel_timespec ts = { .tv_sec = 1, .tv_nsec = 0 };
    struct io_uring_cqe *cqe = NULL;
    rc = io_uring_wait_cqe_timeout(ring, &cqe, &ts);
    if (rc < 0) goto out;
    if (cqe->res < 0) rc = cqe->res;
    else if (!(cqe->flags & IORING_CQE_F_MORE) || !(cqe->flags & IORING_CQE_F_BUFFER)) rc = -EOPNOTSUPP;
    else rc = 0;
    io_uring_cqe_seen(ring, cqe);
out:
    if (sv[0] >= 0) close(sv[0]);
    if (sv[1] >= 0) close(sv[1]);
    return rc;
}

int vf_uring_probe(char *reason, size_t reason_len) {
    struct io_uring ring;
    int rc = io_uring_queue_init(8, &ring, 0);
    if (rc < 0) {
        describe_setup_error(rc, reason, reason_len);
        return 0;
    }
    struct io_uring_probe *p = io_uring_get_probe_ring(&ring);
    if (!p) {
        io_uring_queue_exit(&ring);
        snprintf(reason, reason_len, "io_uring has no opcode probe (Linux before 5.6)");
        return 0;
    }
    static const struct { int op; const char *name; } needed[] = {
        { IORING_OP_RECVMSG, "RECVMSG" }, { IORING_OP_SENDMSG, "SENDMSG" }, { IORING_OP_READ, "READ" },
    };
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++) {
        if (!io_uring_opcode_supported(p, needed[i].op)) {
            io_uring_free_probe(p);
            io_uring_queue_exit(&ring);
            snprintf(reason, reason_len, "io_uring lacks IORING_OP_%s", needed[i].name);
            return 0;
        }
    }
    io_uring_free_probe(p);
    const char *stage = "allocate probe buffers";
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    struct io_uring_buf_ring *br = map_zeroed(page);
    unsigned char *bufs = malloc(VF_PROBE_ENTRIES * VF_PROBE_BYTES);
    rc = br && bufs ? probe_multishot(&ring, br, bufs, &stage) : -ENOMEM;
    io_uring_queue_exit(&ring);
    if (br) munmap(br, page);
    free(bufs);
    if (rc < 0) {
        snprintf(reason, reason_len, "io_uring cannot %s: %s", stage, strerror(-rc));
        return 0;
    }
    /* Optional: which receive setup the kernel accepts. */
    struct io_uring_params params;
    memset(&params, 0, sizeof params);
    params.flags = rx_flag_sets[0];
    int deferred = io_uring_queue_init_params(4, &ring, &params) == 0;
    if (deferred) io_uring_queue_exit(&ring);
    snprintf(reason, reason_len, "io_uring ready: multishot recvmsg over a provided buffer ring, %s",
             deferred ? "SINGLE_ISSUER|DEFER_TASKRUN receive ring"
                      : "no DEFER_TASKRUN (Linux before 6.1), COOP_TASKRUN receive ring");
    return 1;
}

/* ---- receive ---- */

struct vf_uring_rx {
    struct io_uring ring;
    int live;                    /* the ring exists */
    int enabled;                 /* enabled, and so bound to `owner` */
    pthread_t owner;
    int fd, family, wake_fd;
    unsigned int nbufs, slot_bytes;
    unsigned char *slots;        /* nbufs * slot_bytes: recvmsg_out, name, control, payload */
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    struct msghdr tmpl;          /* tells the multishot recvmsg how much room name and control get */
    int recv_armed, wake_armed;
    int wake_pending;            /* the wake read completed: the next receive returns 0 */
    int error;                   /* an unexpected recvmsg error, for the next receive to return */
    uint64_t wake_value;
};

static void rx_teardown(vf_uring_rx *r) {
    if (r->live) io_uring_queue_exit(&r->ring);
    r->live = 0;
    r->enabled = 0;
    r->recv_armed = 0;
    r->wake_armed = 0;
}

/* Creates the ring disabled (so that whichever thread enables it becomes its single issuer), registers the
   socket and eventfd and the buffer ring, and hands every buffer to the kernel. */
static int rx_setup(vf_uring_rx *r) {
    int rc = ring_init(&r->ring, VF_RX_SQ_ENTRIES, r->nbufs * 2 + VF_RX_SQ_ENTRIES, rx_flag_sets,
                       sizeof rx_flag_sets / sizeof rx_flag_sets[0], IORING_SETUP_R_DISABLED);
    if (rc < 0) return rc;
    r->live = 1;
    int files[2] = { r->fd, r->wake_fd };
    rc = io_uring_register_files(&r->ring, files, 2);
    if (rc < 0) goto fail;
    io_uring_buf_ring_init(r->br);
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (unsigned long)(uintptr_t)r->br;
    reg.ring_entries = r->nbufs;
    reg.bgid = VF_RX_BGID;
    rc = io_uring_register_buf_ring(&r->ring, &reg, 0);
    if (rc < 0) goto fail;
    int mask = io_uring_buf_ring_mask(r->nbufs);
    for (unsigned int i = 0; i < r->nbufs; i++)
        io_uring_buf_ring_add(r->br, r->slots + (size_t)i * r->slot_bytes, r->slot_bytes, (unsigned short)i, mask,
                              (int)i);
    io_uring_buf_ring_advance(r->br, (int)r->nbufs);
    return 0;
fail:
    rx_teardown(r);
    return rc;
}

vf_uring_rx *vf_uring_rx_create(int fd, int family, int wake_fd, unsigned int buffers, unsigned int payload_bytes,
                                int *err) {
    if (buffers == 0 || (buffers & (buffers - 1)) != 0 || buffers > 32768 || payload_bytes == 0
        || payload_bytes > (1u << 24)) {
        *err = -EINVAL;
        return NULL;
    }
    vf_uring_rx *r = calloc(1, sizeof *r);
    if (!r) { *err = -ENOMEM; return NULL; }
    r->fd = fd;
    r->family = family;
    r->wake_fd = wake_fd;
    r->nbufs = buffers;
    r->tmpl.msg_namelen = family == AF_INET6 ? VF_RX_NAME_BYTES : sizeof(struct sockaddr_in);
    r->tmpl.msg_controllen = VF_RX_CONTROL_BYTES;
    size_t header = sizeof(struct io_uring_recvmsg_out) + r->tmpl.msg_namelen + r->tmpl.msg_controllen;
    r->slot_bytes = (unsigned int)((header + payload_bytes + 63) & ~(size_t)63);
    r->slots = map_zeroed((size_t)buffers * r->slot_bytes);
    r->br_bytes = (size_t)buffers * sizeof(struct io_uring_buf);
    r->br = map_zeroed(r->br_bytes);
    if (!r->slots || !r->br) {
        *err = -ENOMEM;
        vf_uring_rx_destroy(r);
        return NULL;
    }
    int rc = rx_setup(r);
    if (rc < 0) {
        *err = rc;
        vf_uring_rx_destroy(r);
        return NULL;
    }
    return r;
}

void vf_uring_rx_destroy(vf_uring_rx *r) {
    if (!r) return;
    rx_teardown(r);
    if (r->slots) munmap(r->slots, (size_t)r->nbufs * r->slot_bytes);
    if (r->br) munmap(r->br, r->br_bytes);
    free(r);
}

/* IORING_REGISTER_ENABLE_RINGS. liburing 2.3 declares io_uring_enable_rings but its shared library does not
   export it, so the register call is made here. */
static int ring_enable(struct io_uring *ring) {
    long rc = syscall(__NR_io_uring_register, ring->ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
    return rc < 0 ? -errno : 0;
}

/* Makes the calling thread the ring's owner: enables a fresh ring, or rebuilds one another thread owns. */
static int rx_claim(vf_uring_rx *r) {
    if (r->enabled && pthread_equal(r->owner, pthread_self())) return 0;
    if (r->enabled || !r->live) {
        rx_teardown(r);
        int rc = rx_setup(r);
        if (rc < 0) return rc;
    }
    int rc = ring_enable(&r->ring);
    if (rc < 0) return rc;
    r->enabled = 1;
    r->owner = pthread_self();
    return 0;
}

/* Queues the multishot recvmsg and the wake read if they are not armed; they go in with the next submit. */
static void rx_arm(vf_uring_rx *r) {
    struct io_uring_sqe *sqe;
    if (!r->recv_armed && (sqe = io_uring_get_sqe(&r->ring)) != NULL) {
        io_uring_prep_recvmsg_multishot(sqe, VF_FILE_SOCKET, &r->tmpl, 0);
        sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
        sqe->buf_group = VF_RX_BGID;
        io_uring_sqe_set_data64(sqe, VF_TAG_RECV);
        r->recv_armed = 1;
    }
    if (!r->wake_armed && (sqe = io_uring_get_sqe(&r->ring)) != NULL) {
        io_uring_prep_read(sqe, VF_FILE_WAKE, &r->wake_value, sizeof r->wake_value, 0);
        sqe->flags |= IOSQE_FIXED_FILE;
        io_uring_sqe_set_data64(sqe, VF_TAG_WAKE);
        r->wake_armed = 1;
    }
}

static void rx_recycle(vf_uring_rx *r, unsigned int bid) {
    io_uring_buf_ring_add(r->br, r->slots + (size_t)bid * r->slot_bytes, r->slot_bytes, (unsigned short)bid,
                          io_uring_buf_ring_mask(r->nbufs), 0);
    io_uring_buf_ring_advance(r->br, 1);
}

/* Errors after which the multishot is simply armed again. */
static int rx_benign(int res) {
    return res == -ENOBUFS || res == -EAGAIN || res == -EINTR || res == -ECANCELED || res == -ECONNREFUSED
        || res == -EHOSTUNREACH || res == -ENETUNREACH;
}

/* Parses one received message (res bytes in slot) into the caller's message i. Returns 0 if malformed. */
static int rx_message(vf_uring_rx *r, unsigned char *slot, int res, void *buf, uint32_t cap, uint32_t *len,
                      vf_endpoint *from, uint8_t *truncated, uint16_t *gso, uint8_t *tos, uint64_t *stamp) {
    struct io_uring_recvmsg_out *o = io_uring_recvmsg_validate(slot, res, &r->tmpl);
    if (!o) return 0;
    unsigned int in_buffer = io_uring_recvmsg_payload_length(o, res, &r->tmpl);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    size_t namelen = o->namelen < r->tmpl.msg_namelen ? o->namelen : r->tmpl.msg_namelen;
    memcpy(&ss, io_uring_recvmsg_name(o), namelen);
    vf_addr_to_endpoint(&ss, from);
    *gso = 0;
    *tos = 0;
    *stamp = 0;
    for (struct cmsghdr *c = io_uring_recvmsg_cmsg_firsthdr(o, &r->tmpl); c;
         c = io_uring_recvmsg_cmsg_nexthdr(o, &r->tmpl, c)) {
        vf_cmsg_parse(c, gso, tos, stamp);
    }
    *len = o->payloadlen;
    *truncated = (o->flags & MSG_TRUNC) || o->payloadlen > in_buffer || o->payloadlen > cap;
    if (!*truncated) memcpy(buf, io_uring_recvmsg_payload(o, &r->tmpl), o->payloadlen);
    return 1;
}

/* Takes completions until `count` messages are filled or a wake-up is seen. Returns the new message count. */
static unsigned int rx_harvest(vf_uring_rx *r, void *const *bufs, const uint32_t *caps, uint32_t *lens,
                               vf_endpoint *from, uint8_t *truncated, uint16_t *gso, uint8_t *tos,
                               uint64_t *stamp, unsigned int n,
                               unsigned int count) {
    struct io_uring_cqe *cqe;
    while (n < count && !r->wake_pending && io_uring_peek_cqe(&r->ring, &cqe) == 0) {
        uint64_t tag = io_uring_cqe_get_data64(cqe);
        int res = cqe->res;
        unsigned int flags = cqe->flags;
        io_uring_cqe_seen(&r->ring, cqe);
        if (tag == VF_TAG_WAKE) {
            r->wake_armed = 0;
            r->wake_pending = 1;
            continue;
        }
        if (tag != VF_TAG_RECV) continue;
        if (!(flags & IORING_CQE_F_MORE)) r->recv_armed = 0;
        if (flags & IORING_CQE_F_BUFFER) {
            unsigned int bid = flags >> IORING_CQE_BUFFER_SHIFT;
            if (bid < r->nbufs) {
                if (res > 0 && rx_message(r, r->slots + (size_t)bid * r->slot_bytes, res, bufs[n], caps[n],
                                          &lens[n], &from[n], &truncated[n], &gso[n], &tos[n], &stamp[n]))
                    n++;
                rx_recycle(r, bid);
            }
        }
        if (res < 0 && !rx_benign(res)) r->error = res;
    }
    return n;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int vf_uring_rx_recv(vf_uring_rx *r, void *const *bufs, const uint32_t *caps, uint32_t *lens, vf_endpoint *from,
                     uint8_t *truncated, uint16_t *gso, uint8_t *tos, uint64_t *stamp, unsigned int count,
                     int timeout_ms) {
    int rc = rx_claim(r);
    if (rc < 0) return rc;
    if (r->wake_pending) { r->wake_pending = 0; return 0; }
    if (r->error) { rc = r->error; r->error = 0; return rc; }
    if (count == 0) return 0;
    int64_t deadline = timeout_ms >= 0 ? now_ns() + (int64_t)timeout_ms * 1000000 : 0;

    unsigned int n = rx_harvest(r, bufs, caps, lens, from, truncated, gso, tos, stamp, 0, count);
    if (n > 0 && n < count && !r->wake_pending) {
        /* Top up: let the kernel run the completion work it deferred, without waiting. */
        rx_arm(r);
        rc = io_uring_submit_and_get_events(&r->ring);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) return rc;
        n = rx_harvest(r, bufs, caps, lens, from, truncated, gso, tos, stamp, n, count);
    }
    while (n == 0 && !r->wake_pending && !r->error) {
        struct __kernel_timespec ts, *tsp = NULL;
        if (timeout_ms >= 0) {
            int64_t left = deadline - now_ns();
            if (left < 0) left = 0;
            ts.tv_sec = left / 1000000000;
            ts.tv_nsec = left % 1000000000;
            tsp = &ts;
        }
        rx_arm(r);
        struct io_uring_cqe *cqe = NULL;
        rc = io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, tsp, NULL);
        if (rc < 0 && rc != -ETIME && rc != -EINTR) return rc;
        n = rx_harvest(r, bufs, caps, lens, from, truncated, gso, tos, stamp, 0, count);
        /* A timeout or a signal ends the wait, as poll's would. */
        if (rc == -ETIME || rc == -EINTR) break;
        if (timeout_ms >= 0 && now_ns() >= deadline) break;
    }
    if (n == 0) {
        if (r->wake_pending) { r->wake_pending = 0; return 0; }
        if (r->error) { rc = r->error; r->error = 0; return rc; }
    }
    /* Arms queued while taking messages go in now, so datagrams keep arriving before the next call. */
    if (!r->recv_armed || !r->wake_armed) rx_arm(r);
    if (io_uring_sq_ready(&r->ring) > 0) {
        rc = io_uring_submit(&r->ring);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && n == 0) return rc;
    }
    return (int)n;
}

/* ---- send ---- */

enum { VF_TX_PENDING = 0, VF_TX_DONE = 1, VF_TX_DROPPED = 2 };

struct vf_uring_tx {
    struct io_uring ring;
    int live;
    int family;
    unsigned int capacity;
    struct msghdr *hdrs;             /* per group */
    struct sockaddr_storage *addrs;  /* per group */
    unsigned char *control;          /* VF_SEND_CONTROL_BYTES per group */
    uint16_t *group_size;            /* per group */
    unsigned int *group_first;       /* per group: index of its first datagram */
    struct iovec *iovs;              /* per datagram */
    uint8_t *state;                  /* per datagram: VF_TX_* */
};

vf_uring_tx *vf_uring_tx_create(int fd, int family, unsigned int capacity, int *err) {
    if (capacity == 0 || capacity > 4096) { *err = -EINVAL; return NULL; }
    vf_uring_tx *t = calloc(1, sizeof *t);
    if (!t) { *err = -ENOMEM; return NULL; }
    t->family = family;
    t->capacity = capacity;
    t->hdrs = calloc(capacity, sizeof *t->hdrs);
    t->addrs = calloc(capacity, sizeof *t->addrs);
    t->control = aligned_alloc(8, (size_t)capacity * VF_SEND_CONTROL_BYTES);
    t->group_size = calloc(capacity, sizeof *t->group_size);
    t->group_first = calloc(capacity, sizeof *t->group_first);
    t->iovs = calloc(capacity, sizeof *t->iovs);
    t->state = calloc(capacity, sizeof *t->state);
    if (!t->hdrs || !t->addrs || !t->control || !t->group_size || !t->group_first || !t->iovs || !t->state) {
        *err = -ENOMEM;
        vf_uring_tx_destroy(t);
        return NULL;
    }
    int rc = ring_init(&t->ring, capacity, 0, tx_flag_sets, sizeof tx_flag_sets / sizeof tx_flag_sets[0], 0);
    if (rc < 0) { *err = rc; vf_uring_tx_destroy(t); return NULL; }
    t->live = 1;
    rc = io_uring_register_files(&t->ring, &fd, 1);
    if (rc < 0) { *err = rc; vf_uring_tx_destroy(t); return NULL; }
    return t;
}

void vf_uring_tx_destroy(vf_uring_tx *t) {
    if (!t) return;
    if (t->live) io_uring_queue_exit(&t->ring);
    free(t->hdrs);
    free(t->addrs);
    free(t->control);
    free(t->group_size);
    free(t->group_first);
    free(t->iovs);
    free(t->state);
    free(t);
}

/* Plans every maximal run of pending datagrams and queues one SENDMSG per group. Returns the group count. */
static unsigned int tx_queue(vf_uring_tx *t, void *const *bufs, const uint32_t *lens, const vf_endpoint *to,
                             const uint8_t *tos, unsigned int count, int gso, unsigned int max_segments) {
    unsigned int groups = 0;
    unsigned int i = 0;
    while (i < count && groups < t->capacity) {
        if (t->state[i] != VF_TX_PENDING) { i++; continue; }
        unsigned int end = i + 1;
        while (end < count && t->state[end] == VF_TX_PENDING) end++;
        unsigned int first = groups;
        groups += vf_gso_plan(lens + i, to + i, tos ? tos + i : NULL, end - i, gso, max_segments, t->capacity - groups,
                              t->group_size + groups);
        unsigned int k = i;
        for (unsigned int g = first; g < groups; g++) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);
            if (!sqe) { groups = g; break; }   /* cannot happen: the SQ holds `capacity` entries */
            t->group_first[g] = k;
            vf_fill_send_msghdr(&t->hdrs[g], t->family, &to[k], tos ? tos[k] : 0, &t->addrs[g], &t->iovs[k], bufs + k, lens + k,
                                t->group_size[g], t->control + (size_t)g * VF_SEND_CONTROL_BYTES);
            io_uring_prep_sendmsg(sqe, VF_FILE_SOCKET, &t->hdrs[g], 0);
            sqe->flags |= IOSQE_FIXED_FILE;
            io_uring_sqe_set_data64(sqe, g);
            k += t->group_size[g];
        }
        i = end;
    }
    return groups;
}

int vf_uring_tx_send(vf_uring_tx *t, void *const *bufs, const uint32_t *lens, const vf_endpoint *to,
                     const uint8_t *tos,
                     unsigned int count, int *gso, unsigned int max_segments, int *last_error) {
    if (count > t->capacity) count = t->capacity;
    memset(t->state, VF_TX_PENDING, count);
    int segmented = gso && *gso;
    int sent = 0;
    *last_error = 0;
    for (;;) {
        unsigned int groups = tx_queue(t, bufs, lens, to, tos, count, segmented, max_segments);
        if (groups == 0) break;
        int rc;
        do { rc = io_uring_submit_and_wait(&t->ring, groups); } while (rc == -EINTR);
        if (rc < 0) return sent > 0 ? sent : rc;
        int eio = 0, again = 0;
        for (unsigned int c = 0; c < groups; c++) {
            struct io_uring_cqe *cqe;
            do { rc = io_uring_wait_cqe(&t->ring, &cqe); } while (rc == -EINTR);
            if (rc < 0) return sent > 0 ? sent : rc;
            unsigned int g = (unsigned int)io_uring_cqe_get_data64(cqe);
            int res = cqe->res;
            io_uring_cqe_seen(&t->ring, cqe);
            if (g >= groups) continue;
            unsigned int first = t->group_first[g], size = t->group_size[g];
            if (res >= 0) {
                memset(t->state + first, VF_TX_DONE, size);
                sent += (int)size;
            } else if (res == -EIO && segmented) {
                eio = 1;                                  /* resent below without UDP_SEGMENT */
            } else if (res == -EAGAIN || res == -ENOBUFS || res == -EINTR) {
                again = 1;                                /* resent below after a pause */
            } else {
                t->state[first] = VF_TX_DROPPED;          /* refused: skip one datagram, resend the rest */
                *last_error = -res;
            }
        }
        if (eio) {
            segmented = 0;
            *gso = 0;
        } else if (again) {
            (void)poll(NULL, 0, 1);
        }
    }
    return sent;
}
