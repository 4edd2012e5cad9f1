/* preload_fork_stdio: run under LD_PRELOAD=libumalloc.so. Threads that fork while others
 * read lines and flush every stream (glibc's tst-malloc-fork-deadlock checks the same of its
 * malloc, its bug 19431): getline holds its FILE's lock while it allocates, fflush(NULL)
 * holds the list of all streams while it takes each stream's lock, and fork takes that list
 * lock after the atfork prepare handlers. If those handlers take malloc's locks, the three
 * wait for each other forever. Every child opens and closes a stream (the list lock must be
 * free in the child), first from a single-threaded parent, then from the forking threads.
 * Runs RUN_S seconds; an alarm reports a hang. Prints
 * "preload_fork_stdio: N forks beside getline and fflush(NULL)" and exits 0. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { FORKERS = 4, READERS = 8, LINE = 50000, RUN_S = 2, DEADLINE_S = 20 };

static atomic_bool stop;
static atomic_long forks, lines;
static char path[] = "/tmp/umalloc-fork-stdio-XXXXXX";

static void say(const char *s) { (void)!write(2, s, strlen(s)); }

static void on_alarm(int sig) {
    (void)sig;
    say("preload_fork_stdio: FAIL: hung (fork, getline and fflush(NULL) waiting for each other)\n");
    unlink(path);
    _exit(3);
}

/* A child that opens and closes a stream, then exits with 17; the parent checks it did. */
static void fork_one(void) {
    pid_t child = fork();
    if (child < 0) { say("preload_fork_stdio: FAIL: fork failed\n"); _exit(4); }
    if (child == 0) {
        FILE *f = fopen(path, "r");
        _exit(f != NULL && fclose(f) == 0 ? 17 : 5);
    }
    int status;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 17) {
        say("preload_fork_stdio: FAIL: a child could not open and close a stream\n");
        _exit(4);
    }
    atomic_fetch_add(&forks, 1);
}

static void *forker(void *arg) {
    (void)arg;
    while (!atomic_load(&stop)) fork_one();
    return NULL;
}

/* A stream opened and closed often too: fopen and fclose link it into the list of all. */
static void *reader(void *arg) {
    (void)arg;
    while (!atomic_load(&stop)) {
        FILE *f = fopen(path, "r");
        if (f == NULL) { say("preload_fork_stdio: FAIL: fopen\n"); _exit(4); }
        for (int i = 0; i < 20 && !atomic_load(&stop); i++) {
            rewind(f);
            char *line = NULL;
            size_t cap = 0;
            ssize_t n = getline(&line, &cap, f);
            if (n != LINE + 1 || line[0] != 'x' || line[LINE - 1] != 'x') {
                say("preload_fork_stdio: FAIL: getline read something else\n");
                _exit(4);
            }
            free(line);
            atomic_fetch_add(&lines, 1);
        }
        fclose(f);
    }
    return NULL;
}

static void *flusher(void *arg) {
    (void)arg;
    while (!atomic_load(&stop))
        if (fflush(NULL) != 0) { say("preload_fork_stdio: FAIL: fflush(NULL)\n"); _exit(4); }
    return NULL;
}

int main(void) {
    signal(SIGALRM, on_alarm);
    alarm(DEADLINE_S);
    int fd = mkstemp(path);
    FILE *w = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (w == NULL) { perror("preload_fork_stdio: temporary file"); return 1; }
    for (int i = 0; i < LINE; i++) fputc('x', w);
    fputc('\n', w);
    if (fclose(w) != 0) { perror("preload_fork_stdio: fclose"); return 1; }
    fork_one(); /* single-threaded: the parent's streams usable after it too */
    FILE *r = fopen(path, "r");
    if (r == NULL || fclose(r) != 0) { perror("preload_fork_stdio: fopen after a fork"); return 1; }

    pthread_t t[FORKERS + READERS + 1];
    int n = 0;
    for (int i = 0; i < FORKERS; i++) pthread_create(&t[n++], NULL, forker, NULL);
    for (int i = 0; i < READERS; i++) pthread_create(&t[n++], NULL, reader, NULL);
    pthread_create(&t[n++], NULL, flusher, NULL);
    sleep(RUN_S);
    atomic_store(&stop, true);
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    unlink(path);
    if (atomic_load(&forks) == 0 || atomic_load(&lines) == 0) {
        fprintf(stderr, "preload_fork_stdio: FAIL: %ld forks, %ld lines: a kind of thread never ran\n",
                atomic_load(&forks), atomic_load(&lines));
        return 2;
    }
    printf("preload_fork_stdio: %ld forks beside getline and fflush(NULL) (%ld lines read)\n", atomic_load(&forks),
           atomic_load(&lines));
    return 0;
}
