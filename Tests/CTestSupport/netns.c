// A private network namespace for socket tests: nothing they send can reach the machine's real network.
#include "CTestSupport.h"
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <netinet/in.h>

int vf_test_enter_private_netns(void) {
    if (unshare(CLONE_NEWNET) < 0) return -errno;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    int rc = 0;
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
        rc = -errno;
    } else {
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) rc = -errno;
    }
    close(s);
    return rc;
}

int vf_test_ifup4(const char *name, uint32_t address, int prefix) {
    /* No IPv6 on the link: nothing but the test's own traffic crosses it (no router solicitations, no MLD).
       /proc/sys/net shows the namespace of the thread that opens it. Without IPv6 the file is absent: fine. */
    char path[128];
    snprintf(path, sizeof path, "/proc/sys/net/ipv6/conf/%s/disable_ipv6", name);
    int p = open(path, O_WRONLY | O_CLOEXEC);
    if (p >= 0) {
        if (write(p, "1", 1) < 0) { /* the test's filters still skip IPv6 */ }
        close(p);
    }
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -errno;
    struct ifreq ifr;
    int rc = 0;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(address);
    if (ioctl(s, SIOCSIFADDR, &ifr) < 0) { rc = -errno; goto out; }
    sin->sin_addr.s_addr = htonl(prefix == 0 ? 0 : 0xffffffffu << (32 - prefix));
    if (ioctl(s, SIOCSIFNETMASK, &ifr) < 0) { rc = -errno; goto out; }
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) { rc = -errno; goto out; }
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) rc = -errno;
out:
    close(s);
    return rc;
}

int vf_test_udp_segment(int fd, int segment_size) {
    return setsockopt(fd, IPPROTO_UDP, 103 /* UDP_SEGMENT */, &segment_size, sizeof segment_size) < 0 ? -errno : 0;
}
