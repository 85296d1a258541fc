// Outer IPv6 flow labels (--flowlabel): a pool of labels leased on the UDP socket.
//
// What Linux does (net/ipv6/udp.c udpv6_sendmsg, net/ipv6/ip6_flowlabel.c; checked on 6.18):
//   - sin6_flowinfo of a send's destination is used only once IPV6_FLOWINFO_SEND is on for the socket;
//   - a non-zero label must be leased by the socket (IPV6_FLOWLABEL_MGR) only while some socket in the network
//     namespace holds an exclusive lease; otherwise any label is accepted. Leasing keeps sends working in both
//     cases, so vpnfast leases a pool and maps inner flows onto it;
//   - a lease needs a destination that is neither unspecified nor v4-mapped (EINVAL), but sends to other
//     destinations may use it; IPV6_FL_S_ANY leases do not turn on the namespace-wide exclusive check;
//   - leases are limited: 4096 in the system, and without CAP_NET_ADMIN 32 per socket (ENOBUFS);
//   - a zero label (control messages) leaves the kernel's automatic label (net.ipv6.auto_flowlabels: a hash of
//     the outer addresses and ports) in place.
#include "CShims.h"
#include <errno.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/in6.h>
#include <sys/socket.h>

#ifndef IPV6_FLOWLABEL_MGR
#define IPV6_FLOWLABEL_MGR 32
#endif
#ifndef IPV6_FLOWINFO_SEND
#define IPV6_FLOWINFO_SEND 33
#endif

int vf_udp_lease_flowlabels(int fd, const uint8_t *dst16, uint32_t *labels, unsigned int count, int *first_error) {
    int one = 1, zero = 0;
    *first_error = 0;
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_FLOWINFO_SEND, &one, sizeof one) < 0) {
        *first_error = errno;
        return 0;
    }
    unsigned int n = 0;
    while (n < count) {
        struct in6_flowlabel_req r;
        memset(&r, 0, sizeof r);
        memcpy(&r.flr_dst, dst16, 16);
        r.flr_action = IPV6_FL_A_GET;
        r.flr_flags = IPV6_FL_F_CREATE;
        r.flr_share = IPV6_FL_S_ANY;
        r.flr_label = 0;   /* the kernel picks an unused non-zero label and writes it back */
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_FLOWLABEL_MGR, &r, sizeof r) < 0) {
            *first_error = errno;
            break;
        }
        uint32_t label = ntohl(r.flr_label) & 0xfffff;
        if (label == 0) break;
        labels[n++] = label;
    }
    if (n == 0) (void)setsockopt(fd, IPPROTO_IPV6, IPV6_FLOWINFO_SEND, &zero, sizeof zero);
    return (int)n;
}
