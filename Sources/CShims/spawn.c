// Running a helper program (iproute2's `ip`) and collecting its exit status and error output, without Foundation:
// Foundation's Process watches for the child through a run-loop socket on 127.0.0.1, so in a network namespace
// whose loopback is still down it never sees the child exit and waits forever.
#include "CShims.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

extern char **environ;

int vf_run(const char *path, char *const argv[], char *err, size_t err_len, int *status) {
    int pipefd[2];
    if (err_len > 0) err[0] = 0;
    if (pipe2(pipefd, O_CLOEXEC) < 0) return -errno;
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, pipefd[1], 2);
    // The caller may have blocked signals for its signalfd: the child starts with none blocked and defaults.
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int rc = posix_spawn(&pid, path, &actions, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    close(pipefd[1]);
    if (rc != 0) {
        close(pipefd[0]);
        return -rc;
    }
    // Read the error output to the end (so a chatty child never blocks on a full pipe), keeping what fits.
    size_t used = 0;
    char scratch[512];
    for (;;) {
        ssize_t n = read(pipefd[0], scratch, sizeof scratch);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        size_t keep = err_len > used + 1 ? err_len - used - 1 : 0;
        if ((size_t)n < keep) keep = (size_t)n;
        memcpy(err + used, scratch, keep);
        used += keep;
    }
    if (err_len > 0) err[used] = 0;
    close(pipefd[0]);
    int wstatus;
    while (waitpid(pid, &wstatus, 0) < 0) {
        if (errno != EINTR) return -errno;
    }
    *status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    return 0;
}
