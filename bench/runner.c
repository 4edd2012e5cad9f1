/* bench-run: run one benchmark process and report its cost, for scripts/bench.sh.
 *
 *   bench-run [-p LIB] [-e NAME=VALUE]... [-i STDIN] [-o OUTPUT] [-t SECONDS] -- PROGRAM ARGS...
 *   bench-run -S [same options] -- SERVER ARGS... --client CLIENT ARGS...
 *
 * Plain mode: fork, put the child in its own process group, set LD_PRELOAD=LIB (if -p) and the
 * -e variables in the child only, exec PROGRAM, wait4() it and print one line on stdout:
 *
 *   rc=0 wall=0.512345 user=0.498000 sys=0.012000 cpu=0.510000 maxrss_kb=12345
 *
 * rc is the exit status, or 128+signal, or 124 on timeout (the whole group is killed).
 * wall is measured with CLOCK_MONOTONIC from just before fork to wait4's return.
 *
 * Server mode (-S): every "{PORT}" in the arguments is replaced by a free TCP port on
 * 127.0.0.1. SERVER is started with the preload/env, the runner waits until the port accepts
 * connections, then runs CLIENT (without the preload and without the -e variables) and times it.
 * Then the server gets SIGTERM (SIGKILL after 10 s) and is reaped. The line reports the
 * client's wall time and exit status, and the *server's* user/sys CPU time and peak RSS; rc is
 * non-zero also if the server died before it was asked to stop or did not exit cleanly.
 *
 * The children's stdout and stderr go to OUTPUT (default /dev/null; the server's to
 * OUTPUT.server); stdin comes from STDIN (default /dev/null).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *preload, *in_path = "/dev/null", *out_path = "/dev/null";
static char *envs[64];
static int nenv;
static double timeout_s = 600;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *msg)
{
    fprintf(stderr, "bench-run: %s: %s\n", msg, strerror(errno));
    exit(2);
}

static pid_t spawn(char **argv, int measured, const char *out_file)
{
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        setpgid(0, 0);
        int in = open(in_path, O_RDONLY);
        int out = open(out_file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || out < 0) {
            perror("bench-run: open");
            _exit(127);
        }
        dup2(in, 0);
        dup2(out, 1);
        dup2(out, 2);
        close(in);
        close(out);
        if (measured) {
            if (preload)
                setenv("LD_PRELOAD", preload, 1);
            for (int i = 0; i < nenv; i++)
                putenv(envs[i]);
        }
        execvp(argv[0], argv);
        fprintf(stderr, "bench-run: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* both sides, so it is set before we might kill the group */
    return pid;
}

static int status_rc(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return 255;
}

static void on_alarm(int sig) { (void)sig; }

/* Waits for pid until the deadline; on timeout kills its process group and returns 124.
 * Blocks in wait4 (woken by SIGALRM for the deadline), so the end is seen at once. */
static int wait_until(pid_t pid, double deadline, struct rusage *ru, int *timed_out)
{
    int st;
    *timed_out = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm; /* no SA_RESTART: wait4 returns EINTR */
    sigaction(SIGALRM, &sa, NULL);
    for (;;) {
        double left = deadline - now();
        if (left <= 0) {
            kill(-pid, SIGKILL);
            wait4(pid, &st, 0, ru);
            *timed_out = 1;
            return 124;
        }
        struct itimerval it = { { 0, 0 }, { (time_t)left, (suseconds_t)((left - (time_t)left) * 1e6) + 1 } };
        setitimer(ITIMER_REAL, &it, NULL);
        pid_t r = wait4(pid, &st, 0, ru);
        struct itimerval off = { { 0, 0 }, { 0, 0 } };
        setitimer(ITIMER_REAL, &off, NULL);
        if (r == pid)
            return status_rc(st);
        if (r < 0 && errno != EINTR)
            die("wait4");
    }
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    socklen_t len = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) < 0)
        die("finding a free port");
    close(s);
    return ntohs(a.sin_port);
}

static int port_open(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    if (s >= 0)
        close(s);
    return ok;
}

static void subst_port(char **argv, int port)
{
    char num[16];
    snprintf(num, sizeof num, "%d", port);
    for (; *argv; argv++) {
        char *at = strstr(*argv, "{PORT}");
        if (!at)
            continue;
        size_t n = strlen(*argv) + strlen(num) + 1;
        char *s = malloc(n);
        snprintf(s, n, "%.*s%s%s", (int)(at - *argv), *argv, num, at + 6);
        *argv = s;
    }
}

static void report(int rc, double wall, const struct rusage *ru)
{
    double user = ru->ru_utime.tv_sec + ru->ru_utime.tv_usec * 1e-6;
    double sys = ru->ru_stime.tv_sec + ru->ru_stime.tv_usec * 1e-6;
    printf("rc=%d wall=%.6f user=%.6f sys=%.6f cpu=%.6f maxrss_kb=%ld\n", rc, wall, user, sys,
           user + sys, ru->ru_maxrss);
}

static void usage(void)
{
    fprintf(stderr, "usage: bench-run [-p LIB] [-e NAME=VALUE]... [-i STDIN] [-o OUTPUT] "
                    "[-t SECONDS] [-S] -- PROGRAM ARGS... [--client CLIENT ARGS...]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int server_mode = 0, c;
    while ((c = getopt(argc, argv, "+p:e:i:o:t:S")) != -1) {
        switch (c) {
        case 'p': preload = *optarg ? optarg : NULL; break;
        case 'e':
            if (nenv == 64 || !strchr(optarg, '='))
                usage();
            envs[nenv++] = optarg;
            break;
        case 'i': in_path = optarg; break;
        case 'o': out_path = optarg; break;
        case 't': timeout_s = atof(optarg); break;
        case 'S': server_mode = 1; break;
        default: usage();
        }
    }
    char **prog = argv + optind;
    if (!*prog)
        usage();
    /* the runner itself must not run under the preloaded allocator's influence: it only forks */
    struct rusage ru;
    int to;
    if (!server_mode) {
        double t0 = now();
        pid_t pid = spawn(prog, 1, out_path);
        int rc = wait_until(pid, t0 + timeout_s, &ru, &to);
        double wall = now() - t0;
        report(rc, wall, &ru);
        if (to)
            fprintf(stderr, "bench-run: timeout after %.0f s\n", timeout_s);
        return 0;
    }

    char **client = NULL;
    for (char **a = prog; *a; a++)
        if (strcmp(*a, "--client") == 0) {
            *a = NULL;
            client = a + 1;
            break;
        }
    if (!client || !*client)
        usage();
    int port = free_port();
    subst_port(prog, port);
    subst_port(client, port);
    /* the client must not see the preload: only the server is measured */
    double t_start = now();
    /* the server writes to OUTPUT.server, so that its log never mixes with the client's output */
    char srv_out[4096];
    if (strcmp(out_path, "/dev/null") == 0)
        snprintf(srv_out, sizeof srv_out, "/dev/null");
    else
        snprintf(srv_out, sizeof srv_out, "%s.server", out_path);
    pid_t srv = spawn(prog, 1, srv_out);
    int srv_st, rc = 0;
    for (;;) {
        if (port_open(port))
            break;
        if (waitpid(srv, &srv_st, WNOHANG) == srv) {
            fprintf(stderr, "bench-run: server exited early (status %d)\n", status_rc(srv_st));
            printf("rc=%d wall=0 user=0 sys=0 cpu=0 maxrss_kb=0\n", 100 + status_rc(srv_st) % 100);
            return 0;
        }
        if (now() - t_start > 20) {
            kill(-srv, SIGKILL);
            fprintf(stderr, "bench-run: server did not open port %d\n", port);
            printf("rc=124 wall=0 user=0 sys=0 cpu=0 maxrss_kb=0\n");
            return 0;
        }
        struct timespec ts = { 0, 5000000 };
        nanosleep(&ts, NULL);
    }
    double t0 = now();
    pid_t cl = spawn(client, 0, out_path);
    struct rusage cru;
    int crc = wait_until(cl, t0 + timeout_s, &cru, &to);
    double wall = now() - t0;
    int early = wait4(srv, &srv_st, WNOHANG, &ru) == srv;
    if (early) {
        /* it died under load: report a failure */
        fprintf(stderr, "bench-run: server died during the client run (status %d)\n",
                status_rc(srv_st));
        rc = 100 + status_rc(srv_st) % 100;
    } else {
        kill(srv, SIGTERM);
        int src = wait_until(srv, now() + 10, &ru, &to);
        if (to)
            fprintf(stderr, "bench-run: server ignored SIGTERM, killed\n");
        else if (src != 0)
            fprintf(stderr, "bench-run: server exit status %d after SIGTERM\n", src);
        rc = src;
    }
    if (crc != 0)
        rc = crc;
    report(rc, wall, &ru);
    return 0;
}
