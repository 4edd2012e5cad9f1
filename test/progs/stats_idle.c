/* stats_idle: a quiet process holding some memory, for scripts/umalloc-stat in test/sys_stats.c.
 *
 *   stats_idle STOPFILE [--own-handler] [--signals]
 *
 * Allocates 500 blocks of 100 bytes, 200 of 3000 bytes and one of 2 MiB, prints "ready", then
 * sleeps until STOPFILE exists (checked every 10 ms; at most 60 s). With --own-handler it first
 * installs its own SIGUSR1 handler (so umalloc's is replaced). Prints "bye" and exits 0. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t own_hits;
static void own(int sig) {
    (void)sig;
    own_hits++;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--own-handler") == 0) signal(SIGUSR1, own);
    static void *volatile keep[701];
    for (int i = 0; i < 500; i++) keep[i] = malloc(100);
    for (int i = 500; i < 700; i++) keep[i] = malloc(3000);
    keep[700] = malloc(2 << 20);
    for (int i = 0; i < 701; i++)
        if (!keep[i]) return 1;
    memset(keep[700], 7, 2 << 20);
    printf("ready\n");
    fflush(stdout);
    for (int n = 0; n < 6000 && access(argv[1], F_OK) != 0; n++) {
        struct timespec nap = {0, 10 * 1000 * 1000};
        while (nanosleep(&nap, &nap) != 0 && errno == EINTR) {}
    }
    printf("bye%s\n", own_hits ? " (own handler ran)" : "");
    return 0;
}
