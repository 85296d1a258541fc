// TUN device: open, offloads, plain reads and writes.
#include "CShims.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <sys/uio.h>
#include <net/if.h>
#include <linux/if_tun.h>

int vf_tun_open(const char *name, char *out_name, int vnet_hdr) {
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (vnet_hdr ? IFF_VNET_HDR : 0);
    if (name && name[0]) {
        if (strlen(name) >= IFNAMSIZ) { close(fd); return -ENAMETOOLONG; }
        strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    }
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) { int e = errno; close(fd); return -e; }
    memcpy(out_name, ifr.ifr_name, IFNAMSIZ);
    out_name[IFNAMSIZ - 1] = 0;
    return fd;
}

int vf_tun_set_offload(int fd, unsigned int flags) {
    return ioctl(fd, TUNSETOFFLOAD, flags) < 0 ? -errno : 0;
}

unsigned int vf_tun_enable_offloads(int fd) {
    const unsigned int base = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#define TUN_F_USO6 0x40
#endif
    const unsigned int withUSO = base | TUN_F_USO4 | TUN_F_USO6;
    if (ioctl(fd, TUNSETOFFLOAD, withUSO) == 0) return withUSO;
    if (ioctl(fd, TUNSETOFFLOAD, base) == 0) return base;
    return 0;
}

long vf_writev(int fd, const struct iovec *iov, int count) {
    for (;;) {
        ssize_t n = writev(fd, iov, count);
        if (n >= 0) return n;
        if (errno != EINTR) return -errno;
    }
}

long vf_read(int fd, void *buf, size_t len) {
    for (;;) {
        ssize_t n = read(fd, buf, len);
        if (n >= 0) return n;
        if (errno != EINTR) return -errno;
    }
}

long vf_read_packet(int fd, void *buf, size_t len) {
    // A TUN read hands over one packet and cuts what does not fit, and (on current kernels) still returns the
    // whole packet's length, so a plain read would report more bytes than the buffer holds. The byte past `len`
    // also tells a packet that filled the buffer exactly from one that was cut, on kernels that return the copied
    // length.
    unsigned char sink;
    struct iovec iov[2] = {{.iov_base = buf, .iov_len = len}, {.iov_base = &sink, .iov_len = 1}};
    for (;;) {
        ssize_t n = readv(fd, iov, 2);
        if (n >= 0) return (size_t)n > len ? -EMSGSIZE : n;
        if (errno != EINTR) return -errno;
    }
}

long vf_write(int fd, const void *buf, size_t len) {
    for (;;) {
        ssize_t n = write(fd, buf, len);
        if (n >= 0) return n;
        if (errno != EINTR) return -errno;
    }
}
