/* preload_fork: run under LD_PRELOAD=libumalloc.so. 4 threads allocate and free without pause
 * while the main thread forks 50 times. Each child (single-threaded copy, taken at a random
 * moment of the workers' activity) must be able to: malloc/realloc/free (small and large),
 * free blocks the parent's worker threads allocated, start a thread of its own that allocates,
 * run popen("echo ...") and system("true"), and exit(0) through atexit/stdio teardown.
 * The parent waits for all children with a deadline (a child stuck on a lock inherited in the
 * locked state = deadlock = failure) and checks every child exited 0. Exit 0 on success. */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { WORKERS = 4, FORKS = 50, SLOTS = 512, SHARED = 64 };
static const double DEADLINE = 60.0; /* seconds for all children together */

static _Atomic int stop;
static _Atomic long worker_ops, worker_bad;
static int (*owns)(const void *);

/* Blocks the workers publish, which children free. */
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char *shared_blk[SHARED];
static size_t shared_len[SHARED];

static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *worker(void *arg) {
    uint64_t seed = 0x9E3779B97F4A7C15ull * ((uintptr_t)arg + 1);
    unsigned char *slot[SLOTS] = {0};
    size_t len[SLOTS] = {0};
    while (!stop) {
        for (int k = 0; k < 1000; k++) {
            uint64_t r = rnd(&seed);
            int i = (int)(r % SLOTS);
            if (slot[i]) {
                unsigned char want = (unsigned char)(i + len[i]);
                if (slot[i][0] != want || slot[i][len[i] - 1] != want) worker_bad++;
                free(slot[i]);
                slot[i] = NULL;
            } else {
                size_t n = (r >> 16) % 64 == 0 ? 100000 + (r >> 24) % 900000 : 1 + (r >> 24) % 2000;
                slot[i] = malloc(n);
                if (!slot[i]) {
                    worker_bad++;
                    continue;
                }
                len[i] = n;
                memset(slot[i], (unsigned char)(i + n), n);
            }
            worker_ops++;
        }
        /* Publish one block for the children (and the parent) to free. */
        uint64_t r = rnd(&seed);
        size_t n = 16 + r % 5000;
        unsigned char *b = malloc(n);
        memset(b, 0xC7, n);
        pthread_mutex_lock(&shared_lock);
        int j = (int)((r >> 32) % SHARED);
        unsigned char *old = shared_blk[j];
        shared_blk[j] = b;
        shared_len[j] = n;
        pthread_mutex_unlock(&shared_lock);
        free(old);
    }
    for (int i = 0; i < SLOTS; i++) free(slot[i]);
    return NULL;
}

static void *child_thread(void *arg) {
    size_t total = 0;
    for (int i = 0; i < 2000; i++) {
        char *p = malloc((size_t)(i % 700) + 1);
        p[0] = 1;
        total += (size_t)p[0];
        free(p);
    }
    return (void *)(uintptr_t)total;
}

static int child_errors;
static void child_fail(const char *what) {
    fprintf(stderr, "child %d: FAIL %s\n", (int)getpid(), what);
    child_errors++;
}

static void atexit_handler(void) { free(malloc(1234)); }

static void child_main(int n) {
    atexit(atexit_handler);
    /* 1. The blocks of the parent's workers: check and free them (their heaps' owners are gone). */
    for (int j = 0; j < SHARED; j++) {
        if (!shared_blk[j]) continue;
        if (owns && !owns(shared_blk[j])) child_fail("a worker's block is not owned in the child");
        if (shared_blk[j][0] != 0xC7 || shared_blk[j][shared_len[j] - 1] != 0xC7)
            child_fail("a worker's block has wrong content in the child");
        free(shared_blk[j]);
        shared_blk[j] = NULL;
    }
    /* 2. Own allocations, small and large, with realloc. */
    void *v[500];
    for (int i = 0; i < 500; i++) {
        size_t sz = i % 50 == 0 ? 300000 : (size_t)(i * 13 % 3000) + 1;
        v[i] = malloc(sz);
        if (!v[i]) {
            child_fail("malloc returned NULL");
            break;
        }
        memset(v[i], i & 0xff, sz);
        if (owns && !owns(v[i])) child_fail("malloc result not owned in the child");
    }
    for (int i = 0; i < 500; i += 3) v[i] = realloc(v[i], 5000 + (size_t)i);
    for (int i = 0; i < 500; i++) free(v[i]);
    /* 3. A thread in the child. */
    pthread_t th;
    if (pthread_create(&th, NULL, child_thread, NULL) != 0)
        child_fail("pthread_create in the child");
    else
        pthread_join(th, NULL);
    /* 4. libc calls that allocate and spawn. */
    char cmd[64], line[128] = {0};
    snprintf(cmd, sizeof cmd, "echo child-%d", n);
    FILE *p = popen(cmd, "r");
    if (!p)
        child_fail("popen");
    else {
        if (!fgets(line, sizeof line, p)) line[0] = 0;
        int st = pclose(p);
        char want[64];
        snprintf(want, sizeof want, "child-%d\n", n);
        if (strcmp(line, want) != 0 || st != 0) child_fail("popen output/status");
    }
    if (system("true") != 0) child_fail("system(\"true\")");
    char *s = strdup("bye");
    if (!s || (owns && !owns(s))) child_fail("strdup in the child");
    free(s);
    exit(child_errors ? 1 : 0); /* through atexit and stdio teardown, on purpose */
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void) {
    owns = (int (*)(const void *))dlsym(RTLD_DEFAULT, "um_owns");
    if (!owns) {
        fprintf(stderr, "FAIL: dlsym(um_owns) = NULL: not running under libumalloc.so\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    pthread_t th[WORKERS];
    for (int i = 0; i < WORKERS; i++) pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i);

    pid_t kids[FORKS];
    int started = 0;
    for (int n = 0; n < FORKS; n++) {
        usleep(2000 + (n % 7) * 1500); /* fork at varying moments of the workers' activity */
        pthread_mutex_lock(&shared_lock); /* so the child inherits consistent shared_* arrays */
        pid_t pid = fork();
        if (pid == 0) {
            pthread_mutex_unlock(&shared_lock);
            child_main(n);
        }
        pthread_mutex_unlock(&shared_lock);
        if (pid < 0) {
            fprintf(stderr, "FAIL: fork: %s\n", strerror(errno));
            break;
        }
        kids[started++] = pid;
        /* The parent keeps allocating between forks too. */
        free(malloc((size_t)n * 100 + 1));
    }

    int ok = 0, failed = 0, hung = 0;
    double t0 = now();
    int left = started;
    int done[FORKS] = {0};
    while (left > 0) {
        int any = 0;
        for (int i = 0; i < started; i++) {
            if (done[i]) continue;
            int st;
            pid_t r = waitpid(kids[i], &st, WNOHANG);
            if (r == kids[i]) {
                done[i] = 1;
                left--;
                any = 1;
                if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
                    ok++;
                else {
                    failed++;
                    if (WIFSIGNALED(st))
                        fprintf(stderr, "FAIL: child %d (fork #%d) killed by signal %d (%s)\n",
                                (int)kids[i], i, WTERMSIG(st), strsignal(WTERMSIG(st)));
                    else
                        fprintf(stderr, "FAIL: child %d (fork #%d) exited with %d\n", (int)kids[i],
                                i, WEXITSTATUS(st));
                }
            }
        }
        if (left > 0 && now() - t0 > DEADLINE) {
            for (int i = 0; i < started; i++)
                if (!done[i]) {
                    fprintf(stderr, "FAIL: child %d (fork #%d) still running after %.0f s "
                                    "(deadlock after fork?), killing it\n",
                            (int)kids[i], i, DEADLINE);
                    kill(kids[i], SIGKILL);
                    waitpid(kids[i], NULL, 0);
                    hung++;
                }
            break;
        }
        if (!any) usleep(5000);
    }
    stop = 1;
    for (int i = 0; i < WORKERS; i++) pthread_join(th[i], NULL);
    for (int j = 0; j < SHARED; j++) free(shared_blk[j]);

    printf("forks %d: exited 0: %d, failed: %d, hung: %d; worker ops %ld, worker errors %ld\n",
           started, ok, failed, hung, (long)worker_ops, (long)worker_bad);
    if (ok != FORKS || worker_bad != 0) {
        fprintf(stderr, "preload_fork: FAILED\n");
        return 1;
    }
    printf("preload_fork: all checks passed\n");
    return 0;
}
