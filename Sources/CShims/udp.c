// UDP socket: one dual-stack socket (or IPv4 only), batched receive and send with recvmmsg/sendmmsg.
// Also the pieces the io_uring backend (uring.c) shares: address conversion, the GSO send plan, message filling.
#include "udp_internal.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <unistd.h>

_Static_assert(sizeof(vf_endpoint) == 28, "sockaddr_in6 layout");

int vf_udp_open(uint16_t port, int buffer_bytes, uint16_t *out_port, int *out_family) {
    int family = AF_INET6;
    int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        int off = 0;
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) < 0) { close(fd); fd = -1; }
    }
    if (fd < 0) {
        family = AF_INET;
        fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) return -errno;
    }
    if (buffer_bytes > 0) {
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buffer_bytes, sizeof buffer_bytes) < 0)
            (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof buffer_bytes);
        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buffer_bytes, sizeof buffer_bytes) < 0)
            (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer_bytes, sizeof buffer_bytes);
    }
    int rc;
    if (family == AF_INET6) {
        struct sockaddr_in6 a;
        memset(&a, 0, sizeof a);
        a.sin6_family = AF_INET6;
        a.sin6_addr = in6addr_any;
        a.sin6_port = htons(port);
        rc = bind(fd, (struct sockaddr *)&a, sizeof a);
    } else {
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_ANY);
        a.sin_port = htons(port);
        rc = bind(fd, (struct sockaddr *)&a, sizeof a);
    }
    if (rc < 0) { int e = errno; close(fd); return -e; }
    /* Outer ECN/DSCP and kernel receive timestamps for every datagram (best effort: older kernels lack some). */
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    (void)setsockopt(fd, IPPROTO_IP, IP_RECVTOS, &one, sizeof one);
    if (family == AF_INET6) (void)setsockopt(fd, IPPROTO_IPV6, IPV6_RECVTCLASS, &one, sizeof one);
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) < 0) { int e = errno; close(fd); return -e; }
    *out_port = family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                   : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    *out_family = family;
    return fd;
}

#include <netinet/udp.h>

enum { VF_CONTROL_BYTES = 256 };

struct vf_mmsg {
    unsigned int capacity;
    int family;
    struct mmsghdr *hdrs;
    struct iovec *iovs;
    struct sockaddr_storage *addrs;
    unsigned char *control;   /* VF_CONTROL_BYTES per message, 8-aligned */
};

int vf_udp_enable_gro(int fd) {
    int one = 1;
    return setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) < 0 ? -errno : 0;
}

int vf_udp_probe_gso(int fd) {
    int v = 0;
    socklen_t l = sizeof v;
    return getsockopt(fd, SOL_UDP, UDP_SEGMENT, &v, &l) == 0 ? 1 : 0;
}

vf_mmsg *vf_mmsg_create(unsigned int capacity, int family) {
    vf_mmsg *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->capacity = capacity;
    m->family = family;
    m->hdrs = calloc(capacity, sizeof *m->hdrs);
    m->iovs = calloc(capacity, sizeof *m->iovs);
    m->addrs = calloc(capacity, sizeof *m->addrs);
    m->control = aligned_alloc(8, (size_t)capacity * VF_CONTROL_BYTES);
    if (!m->hdrs || !m->iovs || !m->addrs || !m->control) { vf_mmsg_destroy(m); return NULL; }
    return m;
}

void vf_mmsg_destroy(vf_mmsg *m) {
    if (!m) return;
    free(m->hdrs);
    free(m->iovs);
    free(m->addrs);
    free(m->control);
    free(m);
}

void vf_addr_to_endpoint(const struct sockaddr_storage *s, vf_endpoint *e) {
    if (s->ss_family == AF_INET6) {
        memcpy(e, s, sizeof *e);
        e->sin6_flowinfo = 0;
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)s;
        vf_endpoint_set_v4(e, (const uint8_t *)&a->sin_addr, ntohs(a->sin_port));
    }
}

socklen_t vf_endpoint_to_addr(int family, const vf_endpoint *e, struct sockaddr_storage *s) {
    if (family == AF_INET6) {
        memcpy(s, e, sizeof *e);
        return sizeof *e;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)s;
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_port = e->sin6_port;
    memcpy(&a->sin_addr, &e->sin6_addr.s6_addr[12], 4);
    return sizeof *a;
}

void vf_cmsg_parse(const struct cmsghdr *c, uint16_t *gro, uint8_t *tos, uint64_t *stamp) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
        int v;
        memcpy(&v, CMSG_DATA(c), sizeof v);
        if (v > 0 && v < 65536) *gro = (uint16_t)v;
    } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS && c->cmsg_len >= CMSG_LEN(1)) {
        *tos = *(const uint8_t *)CMSG_DATA(c);   /* one byte */
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_TCLASS && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
        int v;
        memcpy(&v, CMSG_DATA(c), sizeof v);   /* an int */
        *tos = (uint8_t)v;
    } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS
               && c->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
        struct timespec ts;
        memcpy(&ts, CMSG_DATA(c), sizeof ts);
        *stamp = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    }
}

int vf_mmsg_recv(vf_mmsg *m, int fd, void *const *bufs, const uint32_t *caps, uint32_t *lens,
                 vf_endpoint *from, uint8_t *truncated, uint16_t *gso, uint8_t *tos, uint64_t *stamp,
                 unsigned int count) {
    if (count > m->capacity) count = m->capacity;
    for (unsigned int i = 0; i < count; i++) {
        m->iovs[i].iov_base = bufs[i];
        m->iovs[i].iov_len = caps[i];
        struct msghdr *h = &m->hdrs[i].msg_hdr;
        memset(h, 0, sizeof *h);
        h->msg_name = &m->addrs[i];
        h->msg_namelen = sizeof m->addrs[i];
        h->msg_iov = &m->iovs[i];
        h->msg_iovlen = 1;
        h->msg_control = m->control + (size_t)i * VF_CONTROL_BYTES;
        h->msg_controllen = VF_CONTROL_BYTES;
    }
    int n;
    do { n = recvmmsg(fd, m->hdrs, count, MSG_DONTWAIT, NULL); } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    for (int i = 0; i < n; i++) {
        struct msghdr *h = &m->hdrs[i].msg_hdr;
        lens[i] = m->hdrs[i].msg_len;
        truncated[i] = (h->msg_flags & MSG_TRUNC) ? 1 : 0;
        gso[i] = 0;
        tos[i] = 0;
        stamp[i] = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) vf_cmsg_parse(c, &gso[i], &tos[i], &stamp[i]);
        vf_addr_to_endpoint(&m->addrs[i], &from[i]);
    }
    return n;
}

static int same_endpoint(const vf_endpoint *a, const vf_endpoint *b) {
    /* The flow label (--flowlabel) travels in sin6_flowinfo: a segmented run carries one label. */
    return a->sin6_port == b->sin6_port && a->sin6_flowinfo == b->sin6_flowinfo
        && memcmp(&a->sin6_addr, &b->sin6_addr, sizeof a->sin6_addr) == 0;
}

unsigned int vf_gso_plan(const uint32_t *lens, const vf_endpoint *to, const uint8_t *tos, unsigned int count,
                         int gso, unsigned int max_segments, unsigned int max_groups, uint16_t *group_size) {
    unsigned int groups = 0, i = 0;
    while (i < count && groups < max_groups) {
        unsigned int j = i + 1;
        size_t total = lens[i];
        /* An empty datagram cannot be a segment size. */
        if (gso && lens[i] > 0) {
            while (j < count && j - i < max_segments && lens[j] <= lens[i] && same_endpoint(&to[j], &to[i])
                   && (!tos || tos[j] == tos[i]) && total + lens[j] <= VF_GSO_MAX_BYTES) {
                total += lens[j];
                j++;
                if (lens[j - 1] < lens[i]) break;   /* only the last may be shorter */
            }
        }
        group_size[groups++] = (uint16_t)(j - i);
        i = j;
    }
    return groups;
}

void vf_fill_send_msghdr(struct msghdr *h, int family, const vf_endpoint *to, uint8_t tos,
                         struct sockaddr_storage *addr, struct iovec *iov, void *const *bufs, const uint32_t *lens,
                         unsigned int segments, unsigned char *control) {
    memset(h, 0, sizeof *h);
    h->msg_name = addr;
    h->msg_namelen = vf_endpoint_to_addr(family, to, addr);
    for (unsigned int k = 0; k < segments; k++) {
        iov[k].iov_base = bufs[k];
        iov[k].iov_len = lens[k];
    }
    h->msg_iov = iov;
    h->msg_iovlen = segments;
    size_t used = 0;
    if (segments > 1) {
        struct cmsghdr *c = (struct cmsghdr *)control;
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t seg = (uint16_t)lens[0];
        memcpy(CMSG_DATA(c), &seg, sizeof seg);
        used += CMSG_SPACE(sizeof(uint16_t));
    }
    if (tos) {
        struct cmsghdr *c = (struct cmsghdr *)(control + used);
        int v = tos;
        /* IPv4 destinations (v4-mapped on a dual-stack socket too) take IP_TOS; IPv6 ones IPV6_TCLASS. */
        if (family == AF_INET || vf_endpoint_is_v4(to)) {
            c->cmsg_level = IPPROTO_IP;
            c->cmsg_type = IP_TOS;
        } else {
            c->cmsg_level = IPPROTO_IPV6;
            c->cmsg_type = IPV6_TCLASS;
        }
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &v, sizeof v);
        used += CMSG_SPACE(sizeof(int));
    }
    if (used) {
        h->msg_control = control;
        h->msg_controllen = used;
    }
}

/* Builds messages for datagrams [0, count) into m; returns the number of messages and writes, for each
   message, how many datagrams it carries into per_msg[]. */
static unsigned int build_messages(vf_mmsg *m, void *const *bufs, const uint32_t *lens, const vf_endpoint *to,
                                   const uint8_t *tos, unsigned int count, int gso, unsigned int max_segments,
                                   uint16_t *per_msg) {
    unsigned int msgs = vf_gso_plan(lens, to, tos, count, gso, max_segments, m->capacity, per_msg);
    unsigned int i = 0;
    for (unsigned int g = 0; g < msgs; g++) {
        vf_fill_send_msghdr(&m->hdrs[g].msg_hdr, m->family, &to[i], tos ? tos[i] : 0, &m->addrs[g], &m->iovs[i],
                            bufs + i,
                            lens + i, per_msg[g], m->control + (size_t)g * VF_CONTROL_BYTES);
        i += per_msg[g];
    }
    return msgs;
}

int vf_mmsg_send(vf_mmsg *m, int fd, void *const *bufs, const uint32_t *lens, const vf_endpoint *to,
                 const uint8_t *tos, unsigned int count, int *gso, unsigned int max_segments) {
    if (count > m->capacity) count = m->capacity;
    uint16_t per_msg[count ? count : 1];
    unsigned int msgs = build_messages(m, bufs, lens, to, tos, count, gso && *gso, max_segments, per_msg);
    int n;
    do { n = sendmmsg(fd, m->hdrs, msgs, 0); } while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EIO && gso && *gso) {
        *gso = 0;
        msgs = build_messages(m, bufs, lens, to, tos, count, 0, 1, per_msg);
        do { n = sendmmsg(fd, m->hdrs, msgs, 0); } while (n < 0 && errno == EINTR);
    }
    if (n < 0) return -errno;
    int sent = 0;
    for (int k = 0; k < n; k++) sent += per_msg[k];
    return sent;
}

long vf_udp_sendto(int fd, int family, const void *buf, size_t len, const vf_endpoint *to, uint8_t tos) {
    struct sockaddr_storage s;
    struct msghdr h;
    struct iovec iov;
    unsigned char control[VF_SEND_CONTROL_BYTES] __attribute__((aligned(8)));
    void *bufs[1] = { (void *)buf };
    uint32_t lens[1] = { (uint32_t)len };
    vf_fill_send_msghdr(&h, family, to, tos, &s, &iov, bufs, lens, 1, control);
    for (;;) {
        ssize_t n = sendmsg(fd, &h, 0);
        if (n >= 0) return n;
        if (errno != EINTR) return -errno;
    }
}

void vf_endpoint_set_v4(vf_endpoint *e, const uint8_t *addr4, uint16_t port) {
    memset(e, 0, sizeof *e);
    e->sin6_family = AF_INET6;
    e->sin6_port = htons(port);
    e->sin6_addr.s6_addr[10] = 0xff;
    e->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&e->sin6_addr.s6_addr[12], addr4, 4);
}

void vf_endpoint_set_v6(vf_endpoint *e, const uint8_t *addr16, uint16_t port) {
    memset(e, 0, sizeof *e);
    e->sin6_family = AF_INET6;
    e->sin6_port = htons(port);
    memcpy(e->sin6_addr.s6_addr, addr16, 16);
}

int vf_endpoint_is_v4(const vf_endpoint *e) { return IN6_IS_ADDR_V4MAPPED(&e->sin6_addr); }
uint16_t vf_endpoint_port(const vf_endpoint *e) { return ntohs(e->sin6_port); }
