/* instr: tiny loops for scripts/bench-instr.sh, which runs them under callgrind and counts the
 * instructions executed inside bench_instr_n() (N iterations) and bench_instr_2n() (2N
 * iterations, right after) separately (callgrind client requests toggle collection around each and dump its count as
 * a part of its own: run with --collect-atstart=no); the difference over N
 * cancels whatever is paid once (allocator start-up, first pages, the call itself).
 *
 *   instr pair N   p = malloc(32); free(p)                       (one op = one malloc + one free)
 *   instr ring N   64 live blocks of 32 B: free the oldest, malloc a new one
 *   instr rand N   the same ring with sizes drawn from 8..512 (a table of random sizes)
 *   instr batch N  25 blocks of 32 KiB allocated, then all freed, over and over (N a multiple of 25)
 *
 * A warm-up of 10000 iterations runs first, uncounted, so the counted loops see the allocator
 * in its steady state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define HAVE_CALLGRIND 1
#endif
#endif
#ifndef HAVE_CALLGRIND
#define CALLGRIND_TOGGLE_COLLECT
#define CALLGRIND_DUMP_STATS_AT(s)
#define CALLGRIND_ZERO_STATS
#endif

#define RING 64
#define TABLE 4096
#define BATCH 25
#define BATCH_SIZE 32768

static void *ring[RING];
static void *batch[BATCH];
static unsigned sizes[TABLE];
void *volatile sink;

/* the loop, inlined into two functions so that only the measured one is named in
 * --toggle-collect */
__attribute__((always_inline)) static inline void loop(int mode, long n)
{
    if (mode == 0) {
        for (long i = 0; i < n; i++) {
            void *p = malloc(32);
            sink = p;
            free(p);
        }
    } else if (mode == 3) {
        for (long i = 0; i < n; i += BATCH) {
            for (int j = 0; j < BATCH; j++)
                sink = batch[j] = malloc(BATCH_SIZE);
            for (int j = 0; j < BATCH; j++)
                free(batch[j]);
        }
    } else {
        for (long i = 0; i < n; i++) {
            unsigned k = (unsigned)i & (RING - 1);
            free(ring[k]);
            void *p = malloc(mode == 1 ? 32 : sizes[i & (TABLE - 1)]);
            ring[k] = p;
            sink = p;
        }
    }
}

__attribute__((noinline)) void bench_instr_n(int mode, long n)
{
    loop(mode, n);
}

__attribute__((noinline)) void bench_instr_2n(int mode, long n)
{
    loop(mode, 2 * n);
}

__attribute__((noinline)) void bench_instr_warm(int mode, long n)
{
    loop(mode, n);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: instr pair|ring|rand|batch N\n");
        return 2;
    }
    int mode = strcmp(argv[1], "pair") == 0 ? 0 : strcmp(argv[1], "ring") == 0 ? 1
             : strcmp(argv[1], "rand") == 0 ? 2 : strcmp(argv[1], "batch") == 0 ? 3 : -1;
    long n = atol(argv[2]);
    if (mode < 0 || n < 0 || (mode == 3 && n % BATCH != 0)) {
        fprintf(stderr, "instr: bad arguments\n");
        return 2;
    }
    unsigned long long x = 88172645463325252ull;
    for (int i = 0; i < TABLE; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        sizes[i] = 8 + (unsigned)(x % 505);
    }
    for (int i = 0; i < RING; i++)
        if (!(ring[i] = malloc(mode == 2 ? sizes[(TABLE - 1 - i)] : 32)))
            return 1;
    bench_instr_warm(mode, 10000);
    /* counted: each loop on its own, dumped as its own part of the callgrind output */
    CALLGRIND_ZERO_STATS;
    CALLGRIND_TOGGLE_COLLECT;
    bench_instr_n(mode, n);
    CALLGRIND_TOGGLE_COLLECT;
    CALLGRIND_DUMP_STATS_AT("n");
    CALLGRIND_TOGGLE_COLLECT;
    bench_instr_2n(mode, n);
    CALLGRIND_TOGGLE_COLLECT;
    CALLGRIND_DUMP_STATS_AT("2n");
    for (int i = 0; i < RING; i++)
        free(ring[i]);
    return 0;
}
