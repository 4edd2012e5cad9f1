/* spawn: many short processes, the way a shell script, a build or a pipeline runs commands.
 *
 * A preloaded allocator is loaded, relocated and set up again in every process, and a command
 * that runs for a millisecond pays all of it: the pages the library writes as it loads, the
 * system calls of its set-up, its first heap and segment, its work at exit. The other workloads
 * pay it once. Here the parent runs `procs` children one after another (posix_spawn of its own
 * executable with child=1, then waitpid); the children inherit the environment, LD_PRELOAD
 * with it. Each child does what a small command does with memory: `allocs` mallocs of 16 bytes
 * to 4 KiB (log-uniform; names, lines, small tables), each written, every other one freed on
 * the way, a line buffer grown by realloc, then every block checked and freed. A child exits
 * with status 0 when every block held what was written, 3 otherwise.
 *
 *   spawn procs=300 allocs=400 seed=1
 */
#include "common.h"
#include <limits.h>
#include <spawn.h>
#include <sys/wait.h>

extern char **environ;

static int child(long long allocs, uint64_t seed)
{
    rng_t r = rng_seed(seed, 0x5a);
    void **blk = xmalloc(sizeof(void *) * (size_t)allocs);
    size_t *len = xmalloc(sizeof(size_t) * (size_t)allocs);
    uint64_t *tag = xmalloc(sizeof(uint64_t) * (size_t)allocs);
    char *line = NULL;
    size_t line_len = 0;
    for (long long i = 0; i < allocs; i++) {
        len[i] = (size_t)rng_loguniform(&r, 16, 4096);
        tag[i] = mix64(seed * 1000003u + (uint64_t)i);
        blk[i] = xmalloc(len[i]);
        tag_write(blk[i], len[i], tag[i]);
        if (i % 2 == 1 && i / 2 % 3 == 0) { /* freed on the way, like a temporary */
            if (!tag_ok(blk[i], len[i], tag[i]))
                return 3;
            free(blk[i]);
            blk[i] = NULL;
        }
        size_t add = 1 + (size_t)rng_range(&r, 0, 79);
        char *nl = realloc(line, line_len + add);
        if (nl == NULL)
            fail("realloc(%zu) returned NULL", line_len + add);
        line = nl;
        memset(line + line_len, 'a' + (int)(i % 26), add);
        line_len += add;
    }
    int bad = 0;
    for (long long i = 0; i < allocs; i++) {
        if (blk[i] == NULL)
            continue;
        bad |= !tag_ok(blk[i], len[i], tag[i]);
        free(blk[i]);
    }
    free(line);
    free(blk);
    free(len);
    free(tag);
    return bad ? 3 : 0;
}

int main(int argc, char **argv)
{
    opts_init("spawn", argc, argv);
    long long procs = opt("procs", 300);
    long long allocs = opt("allocs", 400);
    uint64_t seed = (uint64_t)opt("seed", 1);
    int is_child = (int)opt("child", 0);
    opts_done();
    if (procs < 1 || allocs < 1 || allocs > 1000000)
        fail("bad parameters (procs >= 1, 1 <= allocs <= 1000000)");
    if (is_child)
        return child(allocs, seed);

    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        fail("readlink /proc/self/exe: %s", strerror(errno));
    self[n] = '\0';
    char a_allocs[64], a_seed[64];
    for (long long p = 0; p < procs; p++) {
        snprintf(a_allocs, sizeof a_allocs, "allocs=%lld", allocs);
        snprintf(a_seed, sizeof a_seed, "seed=%llu", (unsigned long long)(seed + (uint64_t)p));
        char *args[] = { self, "child=1", a_allocs, a_seed, NULL };
        pid_t pid;
        int e = posix_spawn(&pid, self, NULL, NULL, args, environ);
        if (e)
            fail("posix_spawn: %s", strerror(e));
        int st;
        if (waitpid(pid, &st, 0) != pid)
            fail("waitpid: %s", strerror(errno));
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail("child %lld: %s %d", p, WIFEXITED(st) ? "exit status" : "signal",
                 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    }
    /* every child checked its own blocks; the checksum names the work done */
    printf("spawn ok checksum=%016" PRIx64 " procs=%lld allocs=%lld\n", mix64(seed ^ mix64((uint64_t)procs * 1000003u + (uint64_t)allocs)), procs,
           allocs);
    return 0;
}
