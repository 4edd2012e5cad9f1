/* A thread's cache of freed extent blocks of 20..64 KiB (the classes UM_BIN_EXTENT_FIRST to
 * UM_BIN_ECACHE_LAST), for its next mallocs of the same class.
 *
 * Why these sizes are extents at all, and not blocks in the thread's own medium pages: a page
 * of 512 KiB holds 8 to 25 of them, and keeps resident every block it ever carved for as long
 * as one of them is in use. A program that keeps a few such blocks for long (a server's
 * buffers, handed from thread to thread) pins each page's highest count of blocks, class by
 * class and thread by thread, and those highs climb for as long as the program runs. In an
 * arena a freed block's pages are purged a purge delay or two after its free, whatever its
 * neighbours do, and serve the next block of any size and any thread meanwhile.
 *
 * Why a cache in front of the arenas: a program that frees and allocates blocks of these
 * sizes all the time would otherwise take an arena's lock and search its page map twice for
 * every pair, and two threads doing so would hand each other's blocks back and forth through
 * the arena, every line of them moving between the CPUs' caches. The cache is a stack a
 * class, owner only, no lock, no atomic: the block freed last comes back first, with its
 * pages resident and likely still in this CPU's caches. It holds UM_ECACHE_CLASS_BYTES of a
 * class (2 to 6 blocks); a free into a full stack gives its older half back to the arenas
 * under one lock a run of blocks of one arena; blocks the thread did not use between two of
 * its sweeps go back, half of them a sweep, so that what a thread holds follows what it uses.
 * A thread's exit and um_trim empty it. A block freed by another thread goes into the freeing
 * thread's cache: it belongs to no thread, only to its arena.
 *
 * A stack grows when its class goes round through the arena all the time: a program that
 * allocates a batch of such blocks and frees them all, over and over (a request's buffers,
 * a batch of I/O blocks), has each of them above the stack's share go to the arena and come
 * back, about a thousand instructions a pair, where the share only bounds a thread that keeps
 * a few for long. So a free into a full stack doubles it instead (up to UM_ECACHE_GROWN_BYTES,
 * and while the thread caches less than UM_ECACHE_THREAD_BYTES in all) when the stack missed
 * UM_ECACHE_GROW_MISSES mallocs within UM_ECACHE_WINDOW_MS: a rate that a batch loop passes
 * at once and a thread that frees its few blocks of a class at its exit does not (mstress's
 * threads: their peak RSS went over the line with every fixed share bigger than this one, see
 * docs/bench-notes.md). A grown stack that still misses that often (blocks of assorted classes
 * allocated and freed at random, where the stacks' counts wander at random too) gained
 * nothing and holds memory: a collection puts it back to the class's share, and it may grow
 * again only UM_ECACHE_COOLDOWN collections later. A collection that finds blocks unused since
 * the one before halves a grown stack too, and the thread's exit resets it.
 *
 * A cached block is in use as far as its arena knows. It carries UM_FREE_MARK in its second
 * word, as a free small block does, so that a second free of it is reported (by the cache, or
 * by the arena when the block is in another thread's cache); the mark is cleared when the
 * block leaves the cache. The statistics count a block free when it enters the cache and
 * handed out when it leaves it for a malloc, in the heap's counters (the arena counts only
 * what it hands to the program itself or gets back from it), and cached bytes as free. */
#include "core/internal.h"
#include "os/os.h"

/* Per class: of the 20 KiB class 6 blocks, of the 64 KiB one 2. */
#define UM_ECACHE_CLASS_BYTES ((size_t)128 << 10)
_Static_assert(UM_ECACHE_CLASS_BYTES / (20 << 10) <= UM_ECACHE_SLOTS, "a stack holds the smallest class's share");
/* A grown stack: at most this much of a class (16 blocks of 64 KiB; 32 of the smaller
 * classes, UM_ECACHE_SLOTS), and stacks grow while the thread caches less than
 * UM_ECACHE_THREAD_BYTES. */
#define UM_ECACHE_GROWN_BYTES ((size_t)1 << 20)
#define UM_ECACHE_THREAD_BYTES ((size_t)1 << 20)
/* The rate of misses that grows a stack (see the top). */
#define UM_ECACHE_GROW_MISSES 64
#define UM_ECACHE_WINDOW_MS 50
#define UM_ECACHE_COOLDOWN 64
/* Collections at most this often: the sweep that runs them comes every 10 ms or more. */
#define UM_ECACHE_COLLECT_MS 20

static inline size_t class_share(size_t bin) { return UM_ECACHE_CLASS_BYTES / umi_bin_size(bin); }
static inline size_t class_grown_max(size_t bin) {
    size_t n = UM_ECACHE_GROWN_BYTES / umi_bin_size(bin);
    return n < UM_ECACHE_SLOTS ? n : UM_ECACHE_SLOTS;
}
/* Stack k's capacity, set to the class's share at its first push (a division, which the frees
 * of these classes would otherwise pay every time). */
static inline size_t stack_cap(um_extent_cache_t *c, size_t k) {
    if (UM_UNLIKELY(c->cap[k] == 0)) c->cap[k] = (uint8_t)class_share(UM_BIN_EXTENT_FIRST + k);
    return c->cap[k];
}

/* A free found stack k full: double it if its class has gone round through the arena at the
 * rate of a batch loop (see the top). Owner; the clock is read here only, on a path that is
 * about to take an arena lock otherwise. */
static bool stack_grow(um_extent_cache_t *c, size_t k) {
    size_t bin = UM_BIN_EXTENT_FIRST + k, cap = c->cap[k], max = class_grown_max(bin);
    if (c->misses[k] < UM_ECACHE_GROW_MISSES || cap >= max || c->cooldown[k] != 0 || c->bytes >= UM_ECACHE_THREAD_BYTES) return false;
    uint64_t now = umi_os_now_ms();
    if (now - c->window_ms > UM_ECACHE_WINDOW_MS) { /* too slow: count again from now */
        for (size_t j = 0; j < UM_ECACHE_BINS; j++) c->misses[j] = 0;
        c->window_ms = now;
        return false;
    }
    c->cap[k] = (uint8_t)(2 * cap < max ? 2 * cap : max);
    c->misses[k] = 0;
    return true;
}

/* The n oldest blocks of class k (the bottom of its stack) back to their arenas. */
static void flush_oldest(um_extent_cache_t *c, size_t k, size_t n) {
    if (n == 0) return;
    for (size_t j = 0; j < n; j++) umi_key_set(c->blocks[k][j], 0);
    umi_extent_free_cached(c->blocks[k], n);
    size_t left = c->count[k] - n;
    for (size_t j = 0; j < left; j++) c->blocks[k][j] = c->blocks[k][n + j];
    c->count[k] = (uint8_t)left;
    if (c->low[k] > left) c->low[k] = (uint8_t)left;
    UM_SHARED_WRITE(c->bytes, c->bytes - n * umi_bin_size(UM_BIN_EXTENT_FIRST + k));
}

void *umi_extent_cache_pop(um_heap_t *heap, size_t bin) {
    if (bin > UM_BIN_ECACHE_LAST) return NULL;
    um_extent_cache_t *c = &heap->extent_cache;
    size_t k = bin - UM_BIN_EXTENT_FIRST;
    if (c->count[k] == 0) {
        if (c->misses[k] != UINT16_MAX) c->misses[k]++;
        return NULL;
    }
    void *p = c->blocks[k][--c->count[k]];
    if (c->count[k] < c->low[k]) c->low[k] = c->count[k];
    size_t size = umi_bin_size(bin);
    UM_SHARED_WRITE(c->bytes, c->bytes - size);
    UM_SAN_UNPOISON(p, size);
    umi_key_set(p, 0);
    UM_OWNER_ADD(heap->stats.mallocs[bin], 1);
    return p;
}

bool umi_extent_cache_push(um_segment_t *seg, void *p) {
    um_heap_t *heap = umi_tl_heap;
    if (!umi_heap_is_own(heap)) return false; /* no cache to put it in */
    /* Read without the arena's lock: a block's start and length change only by calls on the
     * block itself, and the program is freeing it. */
    size_t size = umi_extent_usable(seg, p);
    if (size == 0) return false; /* not a block start: the arena reports it */
    size_t bin = umi_bin_of(size);
    if (bin < UM_BIN_EXTENT_FIRST || bin > UM_BIN_ECACHE_LAST) return false; /* 12, 16 KiB: a buffer realloc grew */
    if (UM_UNLIKELY(umi_key_get(p) == UM_FREE_MARK)) { umi_double_free(p); return true; }
    um_extent_cache_t *c = &heap->extent_cache;
    size_t k = bin - UM_BIN_EXTENT_FIRST;
    if (c->count[k] >= stack_cap(c, k) && !stack_grow(c, k)) flush_oldest(c, k, (c->count[k] + 1u) / 2);
    umi_key_set(p, UM_FREE_MARK);
    UM_SAN_POISON(p, size);
    c->blocks[k][c->count[k]++] = p;
    UM_SHARED_WRITE(c->bytes, c->bytes + size);
    UM_OWNER_ADD(heap->stats.frees[bin], 1);
    return true;
}

void umi_extent_cache_flush(um_heap_t *heap, bool all) {
    um_extent_cache_t *c = &heap->extent_cache;
    if (all) /* the next thread of a handed-off heap starts from the shares (cap 0) */
        for (size_t k = 0; k < UM_ECACHE_BINS; k++) c->cap[k] = c->cooldown[k] = 0;
    uint64_t now = umi_os_now_ms();
    if (!all && now - c->collected_ms < UM_ECACHE_COLLECT_MS) return;
    for (size_t k = 0; k < UM_ECACHE_BINS && !all; k++) {
        if (c->cooldown[k] != 0) c->cooldown[k]--;
        size_t share = class_share(UM_BIN_EXTENT_FIRST + k);
        if (c->cap[k] <= share) continue; /* not grown */
        if (c->misses[k] >= UM_ECACHE_GROW_MISSES) { /* grown in vain */
            c->cap[k] = (uint8_t)share;
            c->cooldown[k] = UM_ECACHE_COOLDOWN;
        } else if (c->low[k] != 0) { /* some of it unused since the last collection */
            size_t half = c->cap[k] / 2;
            c->cap[k] = (uint8_t)(half > share ? half : share);
        }
    }
    for (size_t k = 0; k < UM_ECACHE_BINS; k++) {
        size_t n = all ? c->count[k] : (c->low[k] + 1u) / 2;
        if (c->count[k] > stack_cap(c, k) + n) n = c->count[k] - stack_cap(c, k); /* a stack cut back */
        flush_oldest(c, k, n);
        c->low[k] = c->count[k];
        c->misses[k] = 0;
    }
    c->window_ms = now;
    c->collected_ms = now;
}
