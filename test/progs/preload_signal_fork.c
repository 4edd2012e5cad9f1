/* preload_signal_fork: run under LD_PRELOAD=libumalloc.so. A single-threaded program whose
 * signal handler forks (glibc's tst-mallocfork2 checks the same of its malloc): a helper
 * process sends SIGUSR1 without pause while the program frees and allocates blocks of
 * 0..70000 bytes at random, so that signals land inside malloc and free, their slow paths and
 * locks included. The handler stops the helper, forks a child that exits at once and waits for
 * it. fork must not wait for a lock that the malloc it interrupted holds. Each block of 2 bytes
 * or more carries a tag in its first and last byte, checked before it is freed. An alarm
 * reports a hang. Prints "preload_signal_fork: N forks from signal handlers inside
 * malloc/free (...), blocks intact" and exits 0. */
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { SLOTS = 1009, MAX_SIZE = 70000, WANT = 400, DEADLINE_S = 60 };

static volatile sig_atomic_t signalled;
static volatile pid_t helper;

static void say(const char *s) { (void)!write(2, s, strlen(s)); }

static void on_usr1(int sig) {
    (void)sig;
    if (signalled) return;
    if (helper > 0) kill(helper, SIGSTOP); /* one at a time: let the program go on */
    signalled = 1;
    pid_t child = fork();
    if (child < 0) { say("preload_signal_fork: FAIL: fork in the handler failed\n"); _exit(4); }
    if (child == 0) _exit(0);
    int status;
    while (waitpid(child, &status, 0) < 0) {}
    if (status != 0) { say("preload_signal_fork: FAIL: the handler's child did not exit 0\n"); _exit(4); }
}

static void on_alarm(int sig) {
    (void)sig;
    if (helper > 0) kill(helper, SIGKILL);
    say("preload_signal_fork: FAIL: hung (a fork in a signal handler waited for a lock?)\n");
    _exit(3);
}

int main(void) {
    struct sigaction sa = {.sa_handler = on_usr1};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGALRM, on_alarm);
    alarm(DEADLINE_S);
    pid_t parent = getpid();
    pid_t h = fork();
    if (h < 0) { perror("fork"); return 1; }
    if (h == 0) {
        for (;;) {
            if (kill(parent, SIGUSR1) != 0) _exit(0);
            sched_yield();
        }
    }
    helper = h;
    static unsigned char *blk[SLOTS];
    static size_t len[SLOTS];
    unsigned seed = 1;
    int inside = 0;
    long pairs = 0;
    while (inside < WANT) {
        int slot = rand_r(&seed) % SLOTS;
        size_t size = (size_t)rand_r(&seed) % MAX_SIZE;
        kill(helper, SIGCONT);
        if (blk[slot] && len[slot] >= 2 && (blk[slot][0] != (unsigned char)slot || blk[slot][len[slot] - 1] != (unsigned char)~slot)) {
            kill(helper, SIGKILL);
            fprintf(stderr, "preload_signal_fork: FAIL: block of slot %d changed\n", slot);
            return 2;
        }
        signalled = 0;
        free(blk[slot]);
        blk[slot] = malloc(size);
        if (signalled) inside++;
        if (blk[slot] == NULL) {
            kill(helper, SIGKILL);
            fprintf(stderr, "preload_signal_fork: FAIL: malloc(%zu) returned NULL\n", size);
            return 2;
        }
        len[slot] = size;
        if (size >= 2) { blk[slot][0] = (unsigned char)slot; blk[slot][size - 1] = (unsigned char)~slot; }
        pairs++;
    }
    signal(SIGUSR1, SIG_IGN);
    kill(helper, SIGKILL);
    waitpid(helper, NULL, 0);
    for (int i = 0; i < SLOTS; i++) free(blk[i]);
    printf("preload_signal_fork: %d forks from signal handlers inside malloc/free (%ld pairs), blocks intact\n", inside, pairs);
    return 0;
}
