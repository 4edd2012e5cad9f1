/* forkheap: a multi-threaded program with a big heap that forks, the way a server forks a
 * worker or a snapshot (redis' BGSAVE), a Python program starts a multiprocessing pool or runs
 * a subprocess, a shell built into a big program runs a command.
 *
 * `threads` threads each build `mib` MiB of small objects (16..256 bytes, log-uniform; a
 * server's sessions, strings and nodes) and then wait, alive, while the main thread forks
 * `forks` children one after another. Each child does what a child does before it calls exec
 * (a subprocess of a big program, the most common fork): checks and frees a run of 100 of one
 * thread's blocks (state it drops), allocates 100 strings (the new program's arguments and
 * environment), checks and frees them, and exits. The parent waits for each; then its threads
 * check and free their blocks and end.
 *
 * fork copies the page tables; the child then shares every page with its parent until one of
 * them writes it. An allocator that writes into the memory of the parent's other threads when
 * a child starts (to disown their heaps, say) copies all of it, page by page, in every child.
 * A child exits with status 0 when every block it read held what was written, 3 otherwise.
 *
 *   forkheap threads=4 mib=8 forks=30 seed=1
 */
#include "common.h"
#include <stdatomic.h>
#include <sys/wait.h>

typedef struct {
    uint64_t seed;
    void **blk;
    size_t *len;
    size_t count;
} heap_arg_t;

static pthread_barrier_t g_built, g_done;
static long long g_mib;
static _Atomic long long g_bad;

static uint64_t tag_of(uint64_t seed, size_t i) { return mix64(seed * 1000003u + (uint64_t)i); }

static void *builder(void *argp)
{
    heap_arg_t *a = argp;
    rng_t r = rng_seed(a->seed, 0xf0);
    size_t cap = (size_t)g_mib << 20 >> 4, bytes = 0, n = 0; /* at most one block per 16 bytes */
    a->blk = xmalloc(cap * sizeof(void *));
    a->len = xmalloc(cap * sizeof(size_t));
    while (bytes < (size_t)g_mib << 20 && n < cap) {
        size_t len = (size_t)rng_loguniform(&r, 16, 256);
        a->blk[n] = xmalloc(len);
        a->len[n] = len;
        tag_write(a->blk[n], len, tag_of(a->seed, n));
        bytes += len;
        n++;
    }
    a->count = n;
    pthread_barrier_wait(&g_built);
    pthread_barrier_wait(&g_done); /* alive while the main thread forks */
    for (size_t i = 0; i < n; i++) { /* then it drops its state, as a thread that ends does */
        if (!tag_ok(a->blk[i], a->len[i], tag_of(a->seed, i)))
            atomic_fetch_add(&g_bad, 1);
        free(a->blk[i]);
    }
    free(a->blk);
    free(a->len);
    return NULL;
}

static int child(heap_arg_t *args, int threads, long long k)
{
    /* what a child does before exec: a few strings for the new program's arguments and
     * environment, and some of the parent's state dropped */
    heap_arg_t *a = &args[k % threads];
    size_t from = (size_t)mix64((uint64_t)k) % a->count, n = a->count - from < 100 ? a->count - from : 100;
    char *strs[100];
    for (size_t j = 0; j < n; j++) {
        if (!tag_ok(a->blk[from + j], a->len[from + j], tag_of(a->seed, from + j)))
            return 3;
        free(a->blk[from + j]);
        strs[j] = xmalloc(16 + j);
        tag_write(strs[j], 16 + j, tag_of(~a->seed, j));
    }
    for (size_t j = 0; j < n; j++) {
        if (!tag_ok(strs[j], 16 + j, tag_of(~a->seed, j)))
            return 3;
        free(strs[j]);
    }
    return 0;
}

int main(int argc, char **argv)
{
    opts_init("forkheap", argc, argv);
    int threads = (int)opt("threads", 4);
    g_mib = opt("mib", 8);
    long long forks = opt("forks", 30);
    uint64_t seed = (uint64_t)opt("seed", 1);
    opts_done();
    if (threads < 1 || threads > 64 || g_mib < 1 || g_mib > 4096 || forks < 1)
        fail("bad parameters (1 <= threads <= 64, 1 <= mib <= 4096, forks >= 1)");

    heap_arg_t *args = xmalloc(sizeof(heap_arg_t) * (size_t)threads);
    pthread_t *tid = xmalloc(sizeof(pthread_t) * (size_t)threads);
    pthread_barrier_init(&g_built, NULL, (unsigned)threads + 1);
    pthread_barrier_init(&g_done, NULL, (unsigned)threads + 1);
    for (int t = 0; t < threads; t++) {
        args[t] = (heap_arg_t){ .seed = mix64(seed * 7919 + (uint64_t)t) };
        int e = pthread_create(&tid[t], NULL, builder, &args[t]);
        if (e)
            fail("pthread_create: %s", strerror(e));
    }
    pthread_barrier_wait(&g_built);
    fflush(NULL);
    for (long long k = 0; k < forks; k++) {
        pid_t pid = fork();
        if (pid < 0)
            fail("fork: %s", strerror(errno));
        if (pid == 0)
            _exit(child(args, threads, k));
        int st;
        if (waitpid(pid, &st, 0) != pid)
            fail("waitpid: %s", strerror(errno));
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail("child %lld: %s %d", k, WIFEXITED(st) ? "exit status" : "signal",
                 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    }
    pthread_barrier_wait(&g_done);
    uint64_t blocks = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(tid[t], NULL);
        blocks += args[t].count;
    }
    if (g_bad)
        fail("%lld blocks changed in the parent", (long long)g_bad);
    free(args);
    free(tid);
    /* the blocks depend only on the seed and sizes; the checksum names the work done */
    printf("forkheap ok checksum=%016" PRIx64 " threads=%d mib=%lld forks=%lld blocks=%" PRIu64 "\n",
           mix64(seed ^ mix64(blocks * 1000003u + (uint64_t)forks)), threads, g_mib, forks, blocks);
    return 0;
}
