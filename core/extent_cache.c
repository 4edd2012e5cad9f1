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
/* Collections at most this often: the sweep that runs them comes every 10 ms or more. */
#define UM_ECACHE_COLLECT_MS 20

static inline size_t class_cap(size_t bin) { return UM_ECACHE_CLASS_BYTES / umi_bin_size(bin); }

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
    if (c->count[k] == 0) return NULL;
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
    if (c->count[k] >= class_cap(bin)) flush_oldest(c, k, (c->count[k] + 1u) / 2);
    umi_key_set(p, UM_FREE_MARK);
    UM_SAN_POISON(p, size);
    c->blocks[k][c->count[k]++] = p;
    UM_SHARED_WRITE(c->bytes, c->bytes + size);
    UM_OWNER_ADD(heap->stats.frees[bin], 1);
    return true;
}

void umi_extent_cache_flush(um_heap_t *heap, bool all) {
    um_extent_cache_t *c = &heap->extent_cache;
    if (c->bytes == 0) return;
    uint64_t now = umi_os_now_ms();
    if (!all && now - c->collected_ms < UM_ECACHE_COLLECT_MS) return;
    for (size_t k = 0; k < UM_ECACHE_BINS; k++) {
        flush_oldest(c, k, all ? c->count[k] : (c->low[k] + 1u) / 2);
        c->low[k] = c->count[k];
    }
    c->collected_ms = now;
}
