// The io_uring TUN backend: the TUN's reads and writes go through io_uring, so one io_uring_enter moves many
// packets instead of one read(2) or writev(2) each.
//   read:  `slots` READs stay armed on the TUN, each into its own buffer (a super-packet with its virtio header
//          fits). The TUN file supports non-blocking reads, so a READ on an empty TUN arms poll instead of tying
//          up an io-wq worker (vf_tun_uring_probe checks this); when packets arrive the reads run as deferred
//          work inside this thread's io_uring_enter, one after another, so completions come back in the order
//          the packets left the TUN's queue. A READ of the wake eventfd sits beside them.
//          A slot handed to the caller is not read into again until the caller releases it.
//   write: one WRITEV per packet or super-packet, all submitted in one io_uring_enter; a TUN write completes
//          inline (the kernel hands the packet to its stack and returns).
// Each ring is created by the first call on the thread that owns it (SINGLE_ISSUER, DEFER_TASKRUN).
#include "CShims.h"
#include <liburing.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>

enum {
    VF_TUN_FILE = 0,            /* registered file indexes */
    VF_TUN_WAKE_FILE = 1,
};
static const uint64_t VF_TUN_TAG_WAKE = UINT64_MAX;

/* Setup flags, best first; a kernel that does not know a flag answers EINVAL and the next set is tried. */
static const unsigned int tun_flag_sets[] = {
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
    IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
    0,
};

static int tun_ring_init(struct io_uring *ring, unsigned int entries) {
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof tun_flag_sets / sizeof tun_flag_sets[0]; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = tun_flag_sets[i];
        rc = io_uring_queue_init_params(entries, ring, &p);
        if (rc != -EINVAL) return rc;
    }
    return rc;
}

/* ---- probe ---- */

int vf_tun_uring_probe(int tun_fd, char *reason, size_t reason_len) {
    struct io_uring ring;
    int rc = tun_ring_init(&ring, 4);
    if (rc < 0) {
        snprintf(reason, reason_len, "io_uring_setup: %s", strerror(-rc));
        return 0;
    }
    static unsigned char buf[256];
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_read(sqe, tun_fd, buf, sizeof buf, 0);
    io_uring_sqe_set_data64(sqe, 1);
    rc = io_uring_submit(&ring);
    int ok = 0;
    if (rc != 1) {
        snprintf(reason, reason_len, "io_uring READ on the TUN could not be submitted: %s",
                 strerror(rc < 0 ? -rc : EIO));
    } else {
        /* A TUN without non-blocking read support answers -EAGAIN within a moment (its read was punted to an
           io-wq worker and failed there on the O_NONBLOCK file); with it, the read stays armed. The TUN is
           not up yet, so no packet can complete it. */
        struct io_uring_cqe *cqe = NULL;
        struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 20 * 1000 * 1000 };
        rc = io_uring_wait_cqe_timeout(&ring, &cqe, &ts);
        if (rc == -ETIME) {
            ok = 1;
            snprintf(reason, reason_len, "io_uring READ on the TUN waits in poll (no io-wq worker)");
        } else if (rc == 0 && cqe->res >= 0) {
            ok = 1;
            snprintf(reason, reason_len, "io_uring READ on the TUN completed");
        } else if (rc == 0) {
            snprintf(reason, reason_len, "io_uring READ on the TUN failed: %s (the kernel's TUN cannot be read "
                     "without blocking through io_uring)", strerror(-cqe->res));
        } else {
            snprintf(reason, reason_len, "io_uring wait failed: %s", strerror(-rc));
        }
    }
    io_uring_queue_exit(&ring);   /* cancels the armed read */
    return ok;
}

/* ---- read ---- */

struct vf_tun_rx {
    struct io_uring ring;
    int live;
    int tun_fd;
    int wake_fd;
    unsigned int slots;
    size_t slot_bytes;
    unsigned char *bufs;
    uint8_t *queued;        /* per slot: a READ is armed (queued or in flight) */
    uint8_t *held;          /* per slot: its data is with the caller */
    uint64_t wake_value;
    int wake_armed;
};

vf_tun_rx *vf_tun_rx_create(int tun_fd, int wake_fd, unsigned int slots, unsigned int slot_bytes, int *err) {
    if (slots == 0 || slots > 1024 || slot_bytes < 64 || slot_bytes > (1u << 20)) { *err = -EINVAL; return NULL; }
    vf_tun_rx *r = calloc(1, sizeof *r);
    if (!r) { *err = -ENOMEM; return NULL; }
    r->tun_fd = tun_fd;
    r->wake_fd = wake_fd;
    r->slots = slots;
    r->slot_bytes = ((size_t)slot_bytes + 63) & ~(size_t)63;
    r->bufs = mmap(NULL, r->slot_bytes * slots, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    r->queued = calloc(slots, 1);
    r->held = calloc(slots, 1);
    if (r->bufs == MAP_FAILED || !r->queued || !r->held) {
        if (r->bufs == MAP_FAILED) r->bufs = NULL;
        *err = -ENOMEM;
        vf_tun_rx_destroy(r);
        return NULL;
    }
    return r;
}

void vf_tun_rx_destroy(vf_tun_rx *r) {
    if (!r) return;
    if (r->live) io_uring_queue_exit(&r->ring);
    if (r->bufs) munmap(r->bufs, r->slot_bytes * r->slots);
    free(r->queued);
    free(r->held);
    free(r);
}

void *vf_tun_rx_buffer(vf_tun_rx *r, unsigned int slot) { return r->bufs + (size_t)slot * r->slot_bytes; }

void vf_tun_rx_release(vf_tun_rx *r, unsigned int slot) {
    if (slot < r->slots) r->held[slot] = 0;
}

static int rx_start(vf_tun_rx *r) {
    if (r->live) return 0;
    int rc = tun_ring_init(&r->ring, r->slots + 2 > 8 ? r->slots + 2 : 8);
    if (rc < 0) return rc;
    r->live = 1;
    int files[2] = { r->tun_fd, r->wake_fd };
    rc = io_uring_register_files(&r->ring, files, 2);
    if (rc < 0) { io_uring_queue_exit(&r->ring); r->live = 0; return rc; }
    return 0;
}

/* Queues a READ for every slot that is neither armed nor with the caller, and the wake read. */
static void rx_arm(vf_tun_rx *r) {
    struct io_uring_sqe *sqe;
    for (unsigned int s = 0; s < r->slots; s++) {
        if (r->queued[s] || r->held[s]) continue;
        if (!(sqe = io_uring_get_sqe(&r->ring))) return;
        io_uring_prep_read(sqe, VF_TUN_FILE, vf_tun_rx_buffer(r, s), (unsigned int)r->slot_bytes, 0);
        sqe->flags |= IOSQE_FIXED_FILE;
        io_uring_sqe_set_data64(sqe, s);
        r->queued[s] = 1;
    }
    if (!r->wake_armed && (sqe = io_uring_get_sqe(&r->ring)) != NULL) {
        io_uring_prep_read(sqe, VF_TUN_WAKE_FILE, &r->wake_value, sizeof r->wake_value, 0);
        sqe->flags |= IOSQE_FIXED_FILE;
        io_uring_sqe_set_data64(sqe, VF_TUN_TAG_WAKE);
        r->wake_armed = 1;
    }
}

/* Moves completions to the caller's arrays. Transient failures (EAGAIN, EINTR, ECANCELED) only re-arm the
   slot; other failures are reported with the slot released. */
static unsigned int rx_harvest(vf_tun_rx *r, uint32_t *slots, int32_t *results, unsigned int n, unsigned int max,
                               int *woken) {
    struct io_uring_cqe *cqe;
    while (n < max && io_uring_peek_cqe(&r->ring, &cqe) == 0) {
        uint64_t tag = io_uring_cqe_get_data64(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&r->ring, cqe);
        if (tag == VF_TUN_TAG_WAKE) {
            r->wake_armed = 0;
            *woken = 1;
            continue;
        }
        if (tag >= r->slots) continue;
        r->queued[tag] = 0;
        if (res == -EAGAIN || res == -EINTR || res == -ECANCELED) continue;
        if (res >= 0) r->held[tag] = 1;
        slots[n] = (uint32_t)tag;
        results[n] = res;
        n++;
    }
    return n;
}

int vf_tun_rx_wait(vf_tun_rx *r, int timeout_ms, uint32_t *slots, int32_t *results, unsigned int max) {
    int rc = rx_start(r);
    if (rc < 0) return rc;
    int woken = 0;
    rx_arm(r);
    /* Submit what was queued and let the kernel run the reads it deferred, without waiting. */
    rc = io_uring_submit_and_get_events(&r->ring);
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) return rc;
    unsigned int n = rx_harvest(r, slots, results, 0, max, &woken);
    if (n > 0 || woken || timeout_ms == 0) return (int)n;
    struct __kernel_timespec ts, *tsp = NULL;
    if (timeout_ms > 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long long)(timeout_ms % 1000) * 1000000;
        tsp = &ts;
    }
    rx_arm(r);
    struct io_uring_cqe *cqe = NULL;
    rc = io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, tsp, NULL);
    if (rc < 0 && rc != -ETIME && rc != -EINTR) return rc;
    n = rx_harvest(r, slots, results, 0, max, &woken);
    return (int)n;
}

/* ---- write ---- */

struct vf_tun_tx {
    struct io_uring ring;
    int live;
    int tun_fd;
    unsigned int entries;
};

vf_tun_tx *vf_tun_tx_create(int tun_fd, unsigned int entries, int *err) {
    if (entries == 0 || entries > 4096) { *err = -EINVAL; return NULL; }
    vf_tun_tx *t = calloc(1, sizeof *t);
    if (!t) { *err = -ENOMEM; return NULL; }
    t->tun_fd = tun_fd;
    t->entries = entries;
    return t;
}

void vf_tun_tx_destroy(vf_tun_tx *t) {
    if (!t) return;
    if (t->live) io_uring_queue_exit(&t->ring);
    free(t);
}

static int tx_start(vf_tun_tx *t) {
    if (t->live) return 0;
    int rc = tun_ring_init(&t->ring, t->entries);
    if (rc < 0) return rc;
    t->live = 1;
    rc = io_uring_register_files(&t->ring, &t->tun_fd, 1);
    if (rc < 0) { io_uring_queue_exit(&t->ring); t->live = 0; return rc; }
    return 0;
}

int vf_tun_tx_writev(vf_tun_tx *t, const struct iovec *iov, const uint32_t *first, const uint32_t *iovcnt,
                     unsigned int count, int32_t *results) {
    int rc = tx_start(t);
    if (rc < 0) return rc;
    unsigned int done = 0;
    while (done < count) {
        unsigned int chunk = count - done < t->entries ? count - done : t->entries;
        for (unsigned int i = 0; i < chunk; i++) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);
            unsigned int w = done + i;
            io_uring_prep_writev(sqe, VF_TUN_FILE, iov + first[w], iovcnt[w], 0);
            sqe->flags |= IOSQE_FIXED_FILE;
            io_uring_sqe_set_data64(sqe, w);
            results[w] = -ECANCELED;
        }
        do { rc = io_uring_submit_and_wait(&t->ring, chunk); } while (rc == -EINTR);
        if (rc < 0) return rc;
        for (unsigned int c = 0; c < chunk; c++) {
            struct io_uring_cqe *cqe;
            do { rc = io_uring_wait_cqe(&t->ring, &cqe); } while (rc == -EINTR);
            if (rc < 0) return rc;
            uint64_t w = io_uring_cqe_get_data64(cqe);
            if (w < count) results[w] = cqe->res;
            io_uring_cqe_seen(&t->ring, cqe);
        }
        done += chunk;
    }
    return 0;
}
