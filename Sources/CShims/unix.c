// Unix stream sockets for the control socket (`vpnfast show`), and the network namespace's identity.
#include "CShims.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>

static int fill_address(struct sockaddr_un *a, const char *path) {
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof a->sun_path) return -ENAMETOOLONG;
    memcpy(a->sun_path, path, n);
    return 0;
}

int vf_unix_listen(const char *path, int backlog) {
    struct sockaddr_un a;
    int rc = fill_address(&a, path);
    if (rc < 0) return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (chmod(path, 0600) < 0 || listen(fd, backlog) < 0) {
        int e = errno;
        close(fd);
        unlink(path);  /* ours: bound a moment ago; left behind it would look stale to the next start */
        return -e;
    }
    return fd;
}

int vf_socket_timeouts(int fd, int timeout_ms) {
    struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0) return -errno;
    return 0;
}

int vf_unix_connect(const char *path, int timeout_ms) {
    struct sockaddr_un a;
    int rc = fill_address(&a, path);
    if (rc < 0) return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    rc = vf_socket_timeouts(fd, timeout_ms);
    if (rc == 0 && connect(fd, (struct sockaddr *)&a, sizeof a) < 0) rc = -errno;
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

int vf_unix_accept(int fd) {
    int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    return c < 0 ? -errno : c;
}

long vf_peer_uid(int fd) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return -errno;
    return (long)cred.uid;
}

int vf_private_directory(const char *path) {
    if (mkdir(path, 0700) < 0 && errno != EEXIST) return -errno;
    struct stat st;
    if (lstat(path, &st) < 0) return -errno;
    if (!S_ISDIR(st.st_mode)) return -ENOTDIR;
    if (st.st_uid != geteuid()) return -EPERM;
    if ((st.st_mode & 07777) != 0700 && chmod(path, 0700) < 0) return -errno;
    return 0;
}

long long vf_netns_inode(int pid) {
    char path[64];
    struct stat st;
    if (pid > 0) {
        snprintf(path, sizeof path, "/proc/%d/ns/net", pid);
    } else {
        snprintf(path, sizeof path, "/proc/self/ns/net");
    }
    return stat(path, &st) < 0 ? -errno : (long long)st.st_ino;
}

int vf_unlink(const char *path) { return unlink(path) < 0 ? -errno : 0; }

long vf_send(int fd, const void *buf, size_t len) {
    for (;;) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0) return (long)n;
        if (errno != EINTR) return -errno;
    }
}
