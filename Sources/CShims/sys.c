// Wakeups, polling, clocks, signals, thread names and affinity.
#include "CShims.h"
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>

int vf_eventfd(void) {
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int vf_eventfd_signal(int fd) {
    uint64_t one = 1;
    return write(fd, &one, sizeof one) < 0 ? -errno : 0;
}

int vf_eventfd_drain(int fd) {
    uint64_t v;
    return read(fd, &v, sizeof v) < 0 ? -errno : 0;
}

int vf_poll2(int fd, int wake_fd, int timeout_ms) {
    struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = wake_fd, .events = POLLIN } };
    int n = poll(p, wake_fd >= 0 ? 2 : 1, timeout_ms);
    if (n < 0) return errno == EINTR ? 0 : -errno;
    int r = 0;
    if (p[0].revents & (POLLIN | POLLERR | POLLHUP)) r |= 1;
    if (wake_fd >= 0 && (p[1].revents & POLLIN)) r |= 2;
    return r;
}

int vf_close(int fd) { return close(fd) < 0 ? -errno : 0; }

uint64_t vf_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void vf_sleep_ns(uint64_t ns) {
    struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull) };
    (void)clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);   /* a signal cuts it short: callers re-check */
}

uint64_t vf_realtime_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int vf_signalfd_setup(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);
    int rc = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (rc != 0) return -rc;
    int fd = signalfd(-1, &set, SFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int vf_signalfd_read(int fd) {
    struct signalfd_siginfo si;
    for (;;) {
        ssize_t n = read(fd, &si, sizeof si);
        if (n == (ssize_t)sizeof si) return (int)si.ssi_signo;
        if (n < 0 && errno == EINTR) continue;
        return n < 0 ? -errno : -EIO;
    }
}

void vf_thread_set_name(const char *name) {
    char buf[16];
    strncpy(buf, name, sizeof buf - 1);
    buf[15] = 0;
    pthread_setname_np(pthread_self(), buf);
}

// cpu_set_t is an array of unsigned long with bit n in word n / bits-per-word: the same bytes as
// 64-bit words on a little-endian machine with 64-bit longs.
_Static_assert(sizeof(unsigned long) == 8, "cpu_set_t words are not 64-bit");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "cpu_set_t word layout assumes little-endian");

int vf_thread_set_affinity(const uint64_t *mask, size_t bytes) {
    return -pthread_setaffinity_np(pthread_self(), bytes, (const cpu_set_t *)mask);
}

int vf_thread_get_affinity(uint64_t *mask, size_t bytes) {
    return -pthread_getaffinity_np(pthread_self(), bytes, (cpu_set_t *)mask);
}
