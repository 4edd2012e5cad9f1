/* Big blocks (from 20 KiB, below the large threshold: the classes of 20..512 KiB; and from
 * 12 KiB, buffers that realloc grows, see core/alloc.c) as runs of OS pages that every thread
 * and every size reuses.
 *
 * Why not pages of one class in each thread's heap, as for smaller blocks: a page of such
 * blocks holds a handful of them (1 to 25), so a thread faults in pages of its own for every
 * big class it uses, and a page keeps every block it ever carved resident while one of them
 * is in use. A program whose threads hand big blocks to each other and are replaced (a
 * server's request buffers) then faults in fresh memory for every class in every new thread,
 * what one class frees never serves another, and what a program that keeps a few such blocks
 * for long holds resident climbs with each class's highest count. Here the blocks of all
 * threads come from shared arenas, and a freed block's pages, merged with their free
 * neighbours, serve the next block of any size while they are still resident, and go back to
 * the OS a delay or two after the free (tcmalloc's page heap and jemalloc's extents work the
 * same way). A thread caches the blocks of up to 64 KiB it frees for its next mallocs
 * (core/extent_cache.c): a program that frees and allocates them in turn, all the time, wants
 * no lock and the block it freed last (docs/design.md, "Big blocks"). A bigger block the
 * program frees waits whole in its arena's quick list for the next malloc of its length, from
 * any thread (see "the quick list" below).
 *
 * An arena is a lock and a list of 4 MiB extent segments.
 *  - A segment's header maps its 1024 OS pages (um_extent_map_t): free or not, dirty (free and
 *    possibly resident) or not, where blocks start and how long they are. A block needs no
 *    header of its own: free() checks the start map, which reports a pointer into the middle
 *    of a block, or a block already given back. A freed block's pages merge with their free
 *    neighbours by themselves: their bits are set, nothing else.
 *  - A block is the first fit in address order, else in a new segment. Address order packs
 *    the blocks in use at the low end of the first segments, so that what lies free at the
 *    high end stays free long enough to be purged. (Preferring runs of dirty pages, wherever
 *    they lie, saves faults, but keeps every page of a fragmented segment in use somewhere,
 *    and resident memory crept up round after round in a program that replaces its threads.)
 *  - Every purge delay the arena ticks: the free pages that were dirty at the last tick and
 *    still are are purged (MADV_DONTNEED, a run of them a call); a segment found wholly free
 *    and clean goes back to the segment cache (the arena keeps its first). A block freed and
 *    not reused is so purged one to two delays after its free. Threads' periodic sweeps tick
 *    idle arenas too, and a thread's exit ticks them early, UM_EXTENT_EXIT_TICK_MS after their
 *    last tick: in a program that replaces its threads in rounds much shorter than the delay,
 *    what a round before freed and nobody took since goes back then, as a thread's emptied pages
 *    do at its exit, and resident memory does not creep up round after round. Not at every
 *    exit: the threads of a round end together, and of two ticks a millisecond apart the second
 *    purges all that the first aged, which is what the round's threads have just freed and the
 *    next round's would fault in again.
 *
 * Which arena, for blocks above 64 KiB: a thread starts at the first and keeps to it unless it
 * found it busy on UM_EXTENT_BUSY_TO_MOVE of its last UM_EXTENT_BUSY_WINDOW operations; then it
 * moves to the next (and keeps to that). One arena shared by all threads is what lets one
 * thread's freed blocks serve another's next ones, and it keeps the fewest pages resident;
 * threads that allocate big blocks at the same time all the time spread over more, one for
 * each CPU at most. For the classes of 20..64 KiB, which threads cache (core/extent_cache.c)
 * and may allocate and free in a loop, a thread takes the arena it was given at its first
 * such block, round-robin: two threads sharing one arena for those take its lock at every
 * miss of their caches and hand each other their blocks, every line of which then moves from
 * one CPU's cache to the other's (two threads churning blocks of 1..64 KiB ran 16 % slower on
 * one arena, though busy on only a tenth of their operations). A free takes the lock of the
 * block's segment's arena, whichever thread frees.
 *
 * Blocks are exactly their class's size (whole pages), so statistics and malloc_usable_size
 * see them as any pooled block, and a page that was purged reads as zero again, which calloc
 * uses to clear only the pages it must. */
#include <string.h>

#include "core/internal.h"
#include "core/counters.h"
#include "core/extent_bits.h"
#include "os/os.h"
#include "hugepages/pagesize.h"

bool umi_extents_on;
unsigned umi_extent_arena_count = 1;
UM_BIG_BSS static um_extent_counts_t counts[UM_EXTENT_ARENAS_MAX];
#define ARENA(i) {.lock = UM_LOCK_INIT(UM_RANK_EXTENT + (i), "extent arena " #i), .counts = &counts[i]}
um_extent_arena_t umi_extent_arenas[UM_EXTENT_ARENAS_MAX] = {
    ARENA(0), ARENA(1), ARENA(2), ARENA(3), ARENA(4), ARENA(5), ARENA(6), ARENA(7),
    ARENA(8), ARENA(9), ARENA(10), ARENA(11), ARENA(12), ARENA(13), ARENA(14), ARENA(15)};
_Static_assert(UM_EXTENT_ARENAS_MAX == 16, "one initializer an arena");

#define FIRST_PAGE UM_EXTENT_FIRST_PAGE
#define END_PAGE UM_EXTENT_END_PAGE
#define USABLE_PAGES (END_PAGE - FIRST_PAGE)
#define PAGE_SIZE_4K ((size_t)1 << UM_EXTENT_PAGE_SHIFT)

static inline uint8_t *page_addr(um_segment_t *seg, size_t i) { return (uint8_t *)seg + (i << UM_EXTENT_PAGE_SHIFT); }

/* The first run of n free pages of seg whose start is a multiple of `align`, or SIZE_MAX.
 * A search that fails has seen every run: the longest of them bounds the next searches. */
static size_t run_find(um_segment_t *seg, size_t n, size_t align) {
    um_extent_map_t *x = &seg->extents;
    if (x->free_pages < n || x->longest_free < n) return SIZE_MAX;
    size_t longest = 0;
    for (size_t i = FIRST_PAGE; i < END_PAGE;) {
        size_t s = bit_next(x->free_map, i, true);
        if (s >= END_PAGE) break;
        size_t a = (s + align - 1) & ~(align - 1);
        size_t e = bit_next_before(x->free_map, s, false, a + n); /* the run's end, or a + n */
        if (a + n <= e) return a;
        if (e - s > longest) longest = e - s; /* e < a + n: the run ends there */
        i = e;
    }
    x->longest_free = (uint16_t)longest;
    return SIZE_MAX;
}

/* ---- arenas ---------------------------------------------------------------------------- */
void umi_extent_init_process(void) {
    /* Pages of 4 KiB are the unit of purging: on a kernel with bigger ones big blocks stay in
     * the threads' pages, as they do on several NUMA nodes. */
    umi_extents_on = !umi_numa_on && umi_os_page_size() == PAGE_SIZE_4K && umi_large_threshold > UM_MEDIUM_MAX;
    unsigned n = umi_os_cpu_count();
    umi_extent_arena_count = n > UM_EXTENT_ARENAS_MAX ? UM_EXTENT_ARENAS_MAX : n; /* n >= 1 */
}

/* The caller's arena for a block of `bin`, locked (see the top). For a cached class, the one
 * the heap was given; else its own, or, when it found that one busy on UM_EXTENT_BUSY_TO_MOVE
 * of its last UM_EXTENT_BUSY_WINDOW operations, another. Callers with no heap of their own (a
 * thread's first allocation, one after its exit, the backup heap) take the first. */
#define UM_EXTENT_BUSY_WINDOW 32
#define UM_EXTENT_BUSY_TO_MOVE 8
static unsigned next_cache_arena; /* round-robin (relaxed atomic) */

/* One more operation of the heap's on its arena, which it found busy or not: true when that
 * ends a window of UM_EXTENT_BUSY_WINDOW in which it was busy UM_EXTENT_BUSY_TO_MOVE times. */
static bool busy_window_ends(um_heap_t *heap, bool busy) {
    heap->extent_busy = (uint8_t)(heap->extent_busy + busy);
    if (++heap->extent_ops < UM_EXTENT_BUSY_WINDOW) return false;
    bool move = heap->extent_busy >= UM_EXTENT_BUSY_TO_MOVE && umi_extent_arena_count > 1;
    heap->extent_ops = heap->extent_busy = 0;
    return move;
}

/* The heap leaves arena i for the next: the next thread that moves goes further. */
static unsigned move_on(um_heap_t *heap, unsigned i) {
    unsigned j = (i + 1) % umi_extent_arena_count;
    heap->extent_arena = (uint8_t)(j + 1);
    return j;
}

static um_extent_arena_t *arena_lock(um_heap_t *heap, size_t bin) {
    if (heap != NULL && !umi_heap_is_own(heap)) heap = NULL;
    if (heap != NULL && bin <= UM_BIN_ECACHE_LAST) {
        if (heap->extent_cache_arena == 0)
            heap->extent_cache_arena = (uint8_t)(__atomic_fetch_add(&next_cache_arena, 1, __ATOMIC_RELAXED) % umi_extent_arena_count + 1);
        um_extent_arena_t *c = &umi_extent_arenas[heap->extent_cache_arena - 1u];
        umi_lock(&c->lock);
        return c;
    }
    unsigned i = heap != NULL && heap->extent_arena != 0 ? heap->extent_arena - 1u : 0;
    um_extent_arena_t *a = &umi_extent_arenas[i];
    bool busy = !umi_trylock(&a->lock);
    if (heap == NULL || !busy_window_ends(heap, busy)) {
        if (busy) umi_lock(&a->lock);
        return a;
    }
    if (!busy) umi_unlock(&a->lock);
    a = &umi_extent_arenas[move_on(heap, i)];
    umi_lock(&a->lock);
    return a;
}

/* The lock of arena a for a free of one of its blocks. A free counts as an operation of the
 * heap's on its arena too: threads that allocate in one arena and free into it at the same
 * time find it busy as often on their frees as on their mallocs (more, when the frees are
 * the longer ones), and move apart all the same. */
static void arena_lock_for_free(um_extent_arena_t *a) {
    bool busy = !umi_trylock(&a->lock);
    if (busy) umi_lock(&a->lock);
    um_heap_t *heap = umi_tl_heap;
    if (!umi_heap_is_own(heap)) return;
    unsigned i = heap->extent_arena != 0 ? heap->extent_arena - 1u : 0;
    if (a == &umi_extent_arenas[i] && busy_window_ends(heap, busy)) move_on(heap, i);
}

/* Under the lock; the sweeps read it without, to pass over an arena with nothing to do. */
static inline void arena_dirty_add(um_extent_arena_t *a, ptrdiff_t n) { UM_SHARED_WRITE(a->dirty_pages, a->dirty_pages + (size_t)n); }

static void segment_format(um_extent_arena_t *a, um_segment_t *seg) {
    um_extent_map_t *x = &seg->extents;
    memset(x, 0, sizeof *x);
    x->arena = a;
    bits_put(x->free_map, FIRST_PAGE, USABLE_PAGES, true);
    UM_SHARED_WRITE(x->free_pages, (uint32_t)USABLE_PAGES);
    x->longest_free = (uint16_t)USABLE_PAGES;
    /* Pages moved here from the region hold old bytes where their small slot was dirty. */
    const size_t per_slot = UM_SMALL_PAGE_SIZE >> UM_EXTENT_PAGE_SHIFT;
    for (uint64_t m = seg->moved_dirty; m != 0; m &= m - 1) {
        size_t from = (size_t)__builtin_ctzll(m) * per_slot, to = from + per_slot;
        if (from < FIRST_PAGE) from = FIRST_PAGE;
        if (to > END_PAGE) to = END_PAGE;
        if (to > from) x->dirty_pages += (uint32_t)bits_put(x->dirty_map, from, to - from, true);
    }
    seg->moved_dirty = 0;
    arena_dirty_add(a, (ptrdiff_t)x->dirty_pages);
}

/* A new segment at the end of the arena's list (first fit fills the older ones first). */
static um_segment_t *arena_grow(um_extent_arena_t *a) {
    um_segment_t *seg = umi_segment_take_unowned(UM_KIND_EXTENT);
    if (seg == NULL) return NULL;
    segment_format(a, seg);
    umi_seg_list_append(&a->segments, seg);
    return seg;
}

/* Purge the set bits of `which` (free pages of seg), a run at a time; returns the pages purged. */
static size_t purge_runs(um_segment_t *seg, const uint64_t *which) {
    um_extent_map_t *x = &seg->extents;
    if (!umi_pages_splittable(seg->page_kind)) return 0; /* hugetlb or locked: resident until the segment goes */
    size_t purged = 0;
    for (size_t i = FIRST_PAGE; i < END_PAGE;) {
        size_t s = bit_next(which, i, true);
        if (s >= END_PAGE) break;
        size_t e = bit_next(which, s, false);
        /* One call for runs that only free clean pages separate: with several threads each
         * call is a TLB shootdown on every CPU the process runs on, and a clean page costs the
         * call nothing. */
        for (;;) {
            size_t next = bit_next(which, e, true);
            if (next >= END_PAGE || bit_next(x->free_map, e, false) < next || bit_next(x->dirty_map, e, true) < next) break;
            e = bit_next(which, next, false);
        }
        if (umi_os_purge(page_addr(seg, s), (e - s) << UM_EXTENT_PAGE_SHIFT)) {
            purged += bits_put(x->dirty_map, s, e - s, false);
            bits_put(x->aged_map, s, e - s, false);
            for (size_t r = s; r < e;) { /* the purged runs: a reuse of them regrets the purge */
                size_t rs = bit_next(which, r, true);
                if (rs >= e) break;
                size_t re = bit_next(which, rs, false);
                bits_put(x->purged_map, rs, re - rs, true);
                r = re;
            }
        }
        i = e;
    }
    UM_SHARED_WRITE(x->dirty_pages, x->dirty_pages - (uint32_t)purged);
    return purged;
}

/* ---- pages ------------------------------------------------------------------------------- */
/* Take pages [at, at + n) of seg for a block starting at `at`; their dirty bits before, into was_dirty. */
static void run_take(um_extent_arena_t *a, um_segment_t *seg, size_t at, size_t n, uint64_t was_dirty[2]) {
    um_extent_map_t *x = &seg->extents;
    bits_copy(x->dirty_map, at, n, was_dirty);
    size_t dirty = bits_put(x->dirty_map, at, n, false);
    bits_put(x->aged_map, at, n, false);
    bits_put(x->free_map, at, n, false);
    UM_SHARED_WRITE(x->free_pages, x->free_pages - (uint32_t)n);
    UM_SHARED_WRITE(x->dirty_pages, x->dirty_pages - (uint32_t)dirty);
    arena_dirty_add(a, -(ptrdiff_t)dirty);
    if (n - dirty != 0 && bits_put(x->purged_map, at, n, false) != 0) {
        /* pages the delay purged, wanted again: was it too short? (core/purge_delay.c) */
        uint64_t now = umi_os_now_ms();
        if (x->purged_at_ms != 0) umi_purge_regret(now - x->purged_at_ms + x->purged_age_ms, now, (n - dirty) << UM_EXTENT_PAGE_SHIFT);
    }
    x->length[at] = (uint16_t)n;
    bits_put(x->start_map, at, 1, true);
}

/* Pages [at, at + n) of seg, free again and dirty. */
static void run_give_back(um_extent_arena_t *a, um_segment_t *seg, size_t at, size_t n) {
    um_extent_map_t *x = &seg->extents;
    bits_put(x->free_map, at, n, true);
    size_t merged = bit_next(x->free_map, at + n, false) - run_start(x->free_map, at); /* with its free neighbours */
    if (merged > x->longest_free) x->longest_free = (uint16_t)merged;
    size_t dirty = bits_put(x->dirty_map, at, n, true);
    UM_SHARED_WRITE(x->free_pages, x->free_pages + (uint32_t)n);
    UM_SHARED_WRITE(x->dirty_pages, x->dirty_pages + (uint32_t)dirty);
    arena_dirty_add(a, (ptrdiff_t)dirty);
    if (umi_purge_delay() == 0) { /* memory goes back at the free (UMALLOC_PURGE_DELAY_MS=0) */
        uint64_t which[UM_EXTENT_WORDS] = {0};
        bits_put(which, at, n, true);
        arena_dirty_add(a, -(ptrdiff_t)purge_runs(seg, which));
    }
}

/* The block starting at page i of seg goes back to the page map. */
static void block_give_back(um_extent_arena_t *a, um_segment_t *seg, size_t i) {
    bits_put(seg->extents.start_map, i, 1, false);
    run_give_back(a, seg, i, seg->extents.length[i]);
}

/* The first fit for n pages aligned to `align` pages, in address order; NULL if no segment
 * of the arena has one. */
static um_segment_t *arena_fit(um_extent_arena_t *a, size_t n, size_t align, size_t *at) {
    for (um_segment_t *seg = a->segments; seg != NULL; seg = seg->next)
        if ((*at = run_find(seg, n, align)) != SIZE_MAX) return seg;
    return NULL;
}

/* ---- the tick ------------------------------------------------------------------------------ */
static void quick_release(um_extent_arena_t *a, size_t n);
static uint8_t *quick_take(um_extent_arena_t *a, size_t n);

/* See the top: purge what aged, age what is dirty, give back segments that are free and clean
 * (all, for um_trim: every free page purged, every free segment given back). Arena locked. */
static void arena_tick(um_extent_arena_t *a, uint64_t now, bool all) {
    quick_release(a, a->quick_count); /* to age and be purged as any free page */
    size_t purged_aged = 0;
    um_segment_t *next;
    for (um_segment_t *seg = a->segments; seg != NULL; seg = next) {
        next = seg->next;
        um_extent_map_t *x = &seg->extents;
        if (x->dirty_pages != 0) {
            uint64_t purge[UM_EXTENT_WORDS];
            for (size_t w = 0; w < UM_EXTENT_WORDS; w++) purge[w] = x->dirty_map[w] & (all ? ~(uint64_t)0 : x->aged_map[w]);
            size_t n = purge_runs(seg, purge);
            arena_dirty_add(a, -(ptrdiff_t)n);
            if (!all) purged_aged += n;
            if (n != 0) {
                /* What this tick purges was dirty at the one before, and free since; um_trim's
                 * purge is no verdict on the delay. */
                x->purged_at_ms = all ? 0 : now;
                x->purged_age_ms = now - a->ticked_ms;
            }
            for (size_t w = 0; w < UM_EXTENT_WORDS; w++) x->aged_map[w] = x->dirty_map[w];
        }
        /* The arena's first segment stays (a program that allocates one big block now and then
         * would otherwise take a segment from the cache and format it every time), but for um_trim. */
        bool wholly_free = x->free_pages == USABLE_PAGES;
        bool clean = x->dirty_pages == 0 || !umi_pages_splittable(seg->page_kind);
        if (wholly_free && clean && (seg != a->segments || all)) {
            arena_dirty_add(a, -(ptrdiff_t)x->dirty_pages);
            umi_seg_list_remove(&a->segments, seg);
            umi_segment_put_unowned(seg, x->dirty_pages != 0);
        }
    }
    if (purged_aged != 0) umi_purge_delay_purged(purged_aged << UM_EXTENT_PAGE_SHIFT, now);
    a->next_tick_ms = now + umi_purge_delay();
    a->ticked_ms = now;
}

static inline void arena_maybe_tick(um_extent_arena_t *a) {
    if (a->dirty_pages == 0 && a->quick_count == 0) return;
    uint64_t now = umi_os_now_ms();
    if (now >= a->next_tick_ms) arena_tick(a, now, false);
}

/* An exit ticks an arena that last ticked this long ago: UM_EXTENT_EXIT_TICK_MS, or the purge
 * delay if shorter (0: every exit, as every free purges then anyway). */
static uint64_t exit_gap_ms(void) {
    uint64_t delay = umi_purge_delay();
    return delay < UM_EXTENT_EXIT_TICK_MS ? delay : UM_EXTENT_EXIT_TICK_MS;
}

void umi_extent_tick_all(um_extent_tick_t how) {
    if (!umi_extents_on) return;
    for (unsigned i = 0; i < umi_extent_arena_count; i++) {
        um_extent_arena_t *a = &umi_extent_arenas[i];
        if (how == UM_EXTENT_TICK_TRIM) umi_lock(&a->lock);
        else if ((UM_SHARED_READ(a->dirty_pages) == 0 && UM_SHARED_READ(a->quick_count) == 0) || !umi_trylock(&a->lock))
            continue; /* nothing to do, or busy: it ticks itself */
        uint64_t now = umi_os_now_ms();
        bool due = how == UM_EXTENT_TICK_TRIM;
        if (how == UM_EXTENT_TICK_DUE) due = now >= a->next_tick_ms;
        if (how == UM_EXTENT_TICK_EXIT) due = now - a->ticked_ms >= exit_gap_ms();
        if (due) arena_tick(a, now, how == UM_EXTENT_TICK_TRIM);
        umi_unlock(&a->lock);
    }
}

/* The caller is about to fault in a fresh segment, so what the arenas hold resident and idle
 * serves it first. For a heap that has filled a segment already (`filling`), with two things
 * the tick does otherwise:
 *  - the quick list goes back to the arena's pages first: the last few blocks a program freed
 *    wait there whole, and they lie in as many segments as they are; a program that frees its
 *    big blocks and moves on to small ones (a compiler's next pass) left one in nearly every
 *    segment, none of which was then free. At most once a segment of the heap's: a program
 *    that uses big blocks all along loses a few hits of its quick list, no more;
 *  - the arena's first segment is taken as well: the tick keeps it so that a big block now and
 *    then does not take a segment from the cache every time, but here the choice is between its
 *    resident pages and fresh ones.
 * Not for a heap that holds a little: its thread would keep a whole segment of another's old
 * blocks resident for a few pages of its own, where the arena's tick would have purged them
 * (threads that come and go after one that used big blocks). */
um_segment_t *umi_extent_take_free_segment(int node, bool filling, uint64_t *dirty) {
    if (!umi_extents_on) return NULL;
    const size_t per_span = UM_SMALL_PAGE_SIZE >> UM_EXTENT_PAGE_SHIFT;
    for (unsigned i = 0; i < umi_extent_arena_count; i++) {
        um_extent_arena_t *a = &umi_extent_arenas[i];
        if ((UM_SHARED_READ(a->dirty_pages) == 0 && (!filling || UM_SHARED_READ(a->quick_count) == 0)) || !umi_trylock(&a->lock)) continue;
        if (filling) quick_release(a, a->quick_count);
        for (um_segment_t *seg = filling || a->segments == NULL ? a->segments : a->segments->next; seg != NULL; seg = seg->next) {
            um_extent_map_t *x = &seg->extents;
            if (x->free_pages != USABLE_PAGES || x->dirty_pages == 0 || seg->node != node) continue;
            uint64_t spans = 1; /* the first holds the header */
            for (size_t j = 1; j < 64; j++) {
                uint64_t w = x->dirty_map[j * per_span >> 6] >> (j * per_span & 63);
                if ((w & (((uint64_t)1 << per_span) - 1)) != 0) spans |= (uint64_t)1 << j;
            }
            arena_dirty_add(a, -(ptrdiff_t)x->dirty_pages);
            umi_seg_list_remove(&a->segments, seg);
            umi_unlock(&a->lock);
            *dirty = spans;
            return seg;
        }
        umi_unlock(&a->lock);
    }
    return NULL;
}

void umi_extent_lock_all(void) {
    for (unsigned i = 0; i < UM_EXTENT_ARENAS_MAX; i++) umi_lock(&umi_extent_arenas[i].lock);
}
void umi_extent_unlock_all(void) {
    for (unsigned i = UM_EXTENT_ARENAS_MAX; i-- > 0;) umi_unlock(&umi_extent_arenas[i].lock);
}

/* ---- blocks ---------------------------------------------------------------------------- */
/* Pages fresh from the OS that the caller writes at once (umi_extent_alloc's will_copy): one
 * call faults them in, not a page fault each. Only when none of them is dirty, as they all are
 * in a block the arena hands out again soon after its free; a resident page would make the call
 * cost more than the copy. */
static void copy_fault_in(const um_segment_t *seg, uint8_t *p, const uint64_t was_dirty[2], size_t copy) {
    if (seg->page_kind != UM_PAGES_4K) return;
    size_t k = (copy + PAGE_SIZE_4K - 1) >> UM_EXTENT_PAGE_SHIFT;
    for (size_t j = 0; j < k; j++)
        if (was_dirty[j >> 6] >> (j & 63) & 1) return;
    umi_os_fault_in(p, p + copy);
}

void *umi_extent_alloc(um_heap_t *heap, size_t bin, size_t align, bool zero, size_t will_copy) {
    size_t n = umi_bin_size(bin) >> UM_EXTENT_PAGE_SHIFT;
    size_t align_pages = align > PAGE_SIZE_4K ? align >> UM_EXTENT_PAGE_SHIFT : 1;
    bool tended = false;
again:;
    um_extent_arena_t *a = arena_lock(heap, bin);
    uint8_t *q = align <= PAGE_SIZE_4K ? quick_take(a, n) : NULL;
    if (q != NULL) {
        UM_OWNER_ADD(a->counts->mallocs[bin], 1);
        arena_maybe_tick(a);
        umi_unlock(&a->lock);
        UM_SAN_UNPOISON(q, n << UM_EXTENT_PAGE_SHIFT);
        umi_key_set((void *)q, 0);
        if (zero) memset(q, 0, n << UM_EXTENT_PAGE_SHIFT); /* freed by the program: dirty */
        return q;
    }
    quick_release(a, a->quick_count); /* no block of this length: the pages may serve it */
    size_t at = SIZE_MAX;
    um_segment_t *seg = arena_fit(a, n, align_pages, &at);
    if (seg == NULL && !tended && umi_heap_is_own(umi_tl_heap)) {
        /* The arena grows next: the small pages the thread emptied go back first, and their
         * segments may serve it (umi_heap_tend; core/segment.c moves them out of the region). */
        umi_unlock(&a->lock);
        umi_heap_tend();
        tended = true;
        goto again;
    }
    if (seg == NULL && (seg = arena_grow(a)) != NULL) at = run_find(seg, n, align_pages);
    if (UM_UNLIKELY(at == SIZE_MAX)) {
        umi_unlock(&a->lock);
        errno = ENOMEM;
        umi_count_failed();
        return NULL;
    }
    uint64_t was_dirty[2];
    run_take(a, seg, at, n, was_dirty);
    UM_OWNER_ADD(a->counts->mallocs[bin], 1);
    umi_pages_touched_add(1, n << UM_EXTENT_PAGE_SHIFT); /* for the THP threshold (hugepages/) */
    arena_maybe_tick(a);
    umi_unlock(&a->lock);
    umi_count_carved(n << UM_EXTENT_PAGE_SHIFT); /* paces the peak samples, as carving pages does */
    uint8_t *p = page_addr(seg, at);
    UM_SAN_UNPOISON(p, n << UM_EXTENT_PAGE_SHIFT);
    /* A dirty first page holds old bytes, and among them may be a free mark where the block's
     * own goes: a small block freed there before the segment moved out of the region
     * (core/segment.c), or the program's data. Left, the block's free would be refused as a
     * second one. A clean page reads zero; a dirty one is resident: the write faults nothing. */
    if (was_dirty[0] & 1) umi_key_set((void *)p, 0);
    /* A clean page reads zero (fresh, or purged): calloc clears the dirty ones, a run of them a
     * call. Not a page a call: GCC expands a memset of 4096 bytes into `rep stosq`, whose start-up
     * every page then pays, where libc's memset clears a run at full speed (docs/bench-notes.md). */
    if (zero)
        for (size_t j = 0; j < n;) {
            if (!(was_dirty[j >> 6] >> (j & 63) & 1)) { j++; continue; }
            size_t e = j + 1;
            while (e < n && (was_dirty[e >> 6] >> (e & 63) & 1)) e++;
            memset(p + (j << UM_EXTENT_PAGE_SHIFT), 0, (e - j) << UM_EXTENT_PAGE_SHIFT);
            j = e;
        }
    if (will_copy != 0) copy_fault_in(seg, p, was_dirty, will_copy < (n << UM_EXTENT_PAGE_SHIFT) ? will_copy : n << UM_EXTENT_PAGE_SHIFT);
    return p;
}

/* The page index of block start p in seg, or SIZE_MAX when no block starts there. */
static size_t block_index(um_segment_t *seg, const void *p) {
    uintptr_t off = (uintptr_t)p - (uintptr_t)seg;
    size_t i = off >> UM_EXTENT_PAGE_SHIFT;
    if ((off & (PAGE_SIZE_4K - 1)) != 0 || i < FIRST_PAGE || i >= END_PAGE || !bit_get(seg->extents.start_map, i)) return SIZE_MAX;
    return i;
}

/* The block starting at page i of seg back to the arena (its lock held): its pages merge with
 * their free neighbours. */
static void block_release(um_extent_arena_t *a, um_segment_t *seg, size_t i) {
    size_t n = seg->extents.length[i];
    UM_SAN_POISON(page_addr(seg, i), n << UM_EXTENT_PAGE_SHIFT);
    block_give_back(a, seg, i);
    umi_pages_touched_add(-1, n << UM_EXTENT_PAGE_SHIFT);
    umi_count_uncarved(n << UM_EXTENT_PAGE_SHIFT);
}

/* ---- the quick list ------------------------------------------------------------------------
 * A program that frees a big block and allocates one of the same size again, over and over (a
 * buffer for each request, a compressor's window for each message), would have the arena
 * search and rewrite its page maps twice a pair: about 1800 instructions for a block of 300 KB.
 * A block the program frees is kept whole instead, in its arena's quick list, and the next
 * block of its length is the newest such one, resident and likely still in this CPU's caches,
 * under the lock the malloc takes anyway. Why in the arena and not in each thread, as the
 * classes up to 64 KiB are (core/extent_cache.c): a thread's cache serves its own thread
 * alone, and a program of many threads that each free a few big blocks of assorted sizes
 * would keep that much more resident a thread; here any thread's next block of the size takes
 * it, and an arena keeps UM_EXTENT_QUICK_BYTES at most. The oldest go back to the page maps
 * when the list is full; all of them when a malloc finds none of its length (their pages may
 * serve it: a program of assorted sizes keeps no more resident than without the list), and at
 * the arena's tick, so that they age and are purged as any free page is, and a program that
 * stops allocating big blocks does not keep them. */

/* The entries from j + gap on move down to j (a loop: the list is short, a call of memmove costs more). */
static inline void quick_close_up(um_extent_arena_t *a, size_t j, size_t gap) {
    for (; j + gap < a->quick_count; j++) {
        a->quick[j] = a->quick[j + gap];
        a->quick_pages[j] = a->quick_pages[j + gap];
    }
}

/* The n oldest blocks of the list back to the page maps. */
static void quick_release(um_extent_arena_t *a, size_t n) {
    if (n == 0) return;
    for (size_t j = 0; j < n; j++) {
        um_segment_t *seg = umi_segment_of(a->quick[j]);
        size_t i = block_index(seg, a->quick[j]);
        UM_CHECK(i != SIZE_MAX && seg->extents.length[i] == a->quick_pages[j]); /* the list takes block starts, in use */
        umi_key_set(a->quick[j], 0);
        UM_SHARED_WRITE(a->quick_bytes, a->quick_bytes - ((size_t)a->quick_pages[j] << UM_EXTENT_PAGE_SHIFT));
        block_release(a, seg, i);
    }
    size_t left = a->quick_count - n;
    quick_close_up(a, 0, n);
    UM_SHARED_WRITE(a->quick_count, (uint8_t)left);
}

/* The program's free of the block at page i of seg into the list (lock held); false when it
 * does not go there: it would not fit, or memory goes back at the free (a purge delay of 0). */
static bool quick_put(um_extent_arena_t *a, um_segment_t *seg, size_t i) {
    size_t n = seg->extents.length[i], bytes = n << UM_EXTENT_PAGE_SHIFT;
    if (bytes > UM_EXTENT_QUICK_BYTES || umi_purge_delay() == 0) return false;
    size_t old = 0;
    for (size_t room = UM_EXTENT_QUICK_BYTES - a->quick_bytes; a->quick_count - old == UM_EXTENT_QUICK_SLOTS || room < bytes; old++)
        room += (size_t)a->quick_pages[old] << UM_EXTENT_PAGE_SHIFT;
    quick_release(a, old);
    uint8_t *p = page_addr(seg, i);
    umi_key_set((void *)p, UM_FREE_MARK); /* a second free of it is reported (block_free) */
    UM_SAN_POISON(p, bytes);
    a->quick[a->quick_count] = p;
    a->quick_pages[a->quick_count] = (uint16_t)n;
    UM_SHARED_WRITE(a->quick_count, (uint8_t)(a->quick_count + 1));
    UM_SHARED_WRITE(a->quick_bytes, a->quick_bytes + bytes);
    return true;
}

/* The newest block of n pages in the list, taken out of it (lock held), or NULL. */
static uint8_t *quick_take(um_extent_arena_t *a, size_t n) {
    for (size_t j = a->quick_count; j-- > 0;) {
        if (a->quick_pages[j] != n) continue;
        uint8_t *p = a->quick[j];
        quick_close_up(a, j, 1);
        UM_SHARED_WRITE(a->quick_count, (uint8_t)(a->quick_count - 1));
        UM_SHARED_WRITE(a->quick_bytes, a->quick_bytes - (n << UM_EXTENT_PAGE_SHIFT));
        return p;
    }
    return NULL;
}

/* A free of the program's that no cache took. */
static void block_free(um_segment_t *seg, void *p) {
    um_extent_arena_t *a = seg->extents.arena;
    arena_lock_for_free(a);
    size_t i = block_index(seg, p);
    /* A block in a thread's cache is in use here: its mark tells a second free of it. */
    if (UM_UNLIKELY(i != SIZE_MAX && umi_key_get(p) == UM_FREE_MARK)) {
        umi_unlock(&a->lock);
        umi_double_free(p);
        return;
    }
    if (UM_UNLIKELY(i == SIZE_MAX)) {
        size_t at = ((uintptr_t)p - (uintptr_t)seg) >> UM_EXTENT_PAGE_SHIFT;
        bool outside = at < FIRST_PAGE || at >= END_PAGE, freed = !outside && bit_get(seg->extents.free_map, at);
        umi_unlock(&a->lock);
        if (freed && ((uintptr_t)p & (PAGE_SIZE_4K - 1)) == 0) umi_double_free(p);
        else if (outside || freed) umi_warn_ptr("free of a pointer outside any block:", p);
        else umi_warn_ptr("free of a pointer into the middle of a block:", p);
        return;
    }
    UM_OWNER_ADD(a->counts->frees[umi_bin_of((size_t)seg->extents.length[i] << UM_EXTENT_PAGE_SHIFT)], 1);
    if (!quick_put(a, seg, i)) block_release(a, seg, i);
    arena_maybe_tick(a);
    umi_unlock(&a->lock);
}

void umi_extent_free(um_segment_t *seg, void *p) {
    if (!umi_extent_cache_push(seg, p)) block_free(seg, p);
}

void umi_extent_free_cached(void *const *blocks, size_t count) {
    for (size_t j = 0; j < count;) { /* one lock for each run of blocks of the same arena */
        um_extent_arena_t *a = umi_segment_of(blocks[j])->extents.arena;
        umi_lock(&a->lock);
        for (; j < count && umi_segment_of(blocks[j])->extents.arena == a; j++) {
            um_segment_t *seg = umi_segment_of(blocks[j]);
            size_t i = block_index(seg, blocks[j]);
            UM_CHECK(i != SIZE_MAX); /* the cache took block starts only, and they stayed in use */
            block_release(a, seg, i);
        }
        arena_maybe_tick(a);
        umi_unlock(&a->lock);
    }
}

size_t umi_extent_usable(um_segment_t *seg, const void *p) {
    size_t i = block_index(seg, p);
    return i == SIZE_MAX ? 0 : (size_t)UM_SHARED_READ(seg->extents.length[i]) << UM_EXTENT_PAGE_SHIFT;
}

bool umi_extent_resize(um_segment_t *seg, void *p, size_t size) {
    if (size <= UM_REALLOC_EXTENT_MIN || size >= umi_large_threshold) return false;
    size_t bin = umi_extent_bin_for(size), want = umi_bin_size(bin) >> UM_EXTENT_PAGE_SHIFT;
    um_extent_arena_t *a = seg->extents.arena;
    um_extent_map_t *x = &seg->extents;
    umi_lock(&a->lock);
    size_t i = block_index(seg, p), n = i == SIZE_MAX ? 0 : x->length[i];
    if (want > n) quick_release(a, a->quick_count); /* the pages after the block may be a listed one's */
    bool ok = i != SIZE_MAX && (want <= n || (i + want <= END_PAGE && bit_next(x->free_map, i + n, false) >= i + want));
    if (ok && want != n) {
        if (want < n) {
            UM_SAN_POISON(page_addr(seg, i + want), (n - want) << UM_EXTENT_PAGE_SHIFT);
            run_give_back(a, seg, i + want, n - want);
        } else {
            uint64_t unused[2];
            run_take(a, seg, i + n, want - n, unused); /* the pages after it: free */
            bits_put(x->start_map, i + n, 1, false);
            UM_SAN_UNPOISON(page_addr(seg, i + n), (want - n) << UM_EXTENT_PAGE_SHIFT);
        }
        x->length[i] = (uint16_t)want;
        UM_OWNER_ADD(a->counts->frees[umi_bin_of(n << UM_EXTENT_PAGE_SHIFT)], 1); /* counted as a block of the new class */
        UM_OWNER_ADD(a->counts->mallocs[bin], 1);
    }
    arena_maybe_tick(a);
    umi_unlock(&a->lock);
    if (ok && want > n) umi_count_carved((want - n) << UM_EXTENT_PAGE_SHIFT);
    if (ok && want < n) umi_count_uncarved((n - want) << UM_EXTENT_PAGE_SHIFT);
    return ok;
}

/* ---- the heap check ------------------------------------------------------------------------ */
const char *umi_extent_check(const um_segment_t *seg, const um_extent_arena_t *a) {
    const um_extent_map_t *x = &seg->extents;
    if (seg->kind != UM_KIND_EXTENT || seg->page_shift != UM_EXTENT_PAGE_SHIFT || seg->page_count != 0) return "extent segment whose layout is not an extent segment's";
    if (x->arena != a) return "extent segment on the list of an arena not its own";
    size_t free_pages = 0, dirty = 0;
    for (size_t w = 0; w < UM_EXTENT_WORDS; w++) {
        free_pages += (size_t)__builtin_popcountll(x->free_map[w]);
        dirty += (size_t)__builtin_popcountll(x->dirty_map[w]);
        if ((x->dirty_map[w] | x->aged_map[w] | x->purged_map[w]) & ~x->free_map[w]) return "extent page in use marked dirty, aged or purged";
        if (x->start_map[w] & x->free_map[w]) return "extent block that starts on a free page";
    }
    if (free_pages != x->free_pages || dirty != x->dirty_pages) return "extent segment whose page counts are wrong";
    for (size_t i = FIRST_PAGE, e; (i = bit_next(x->free_map, i, true)) < END_PAGE; i = e)
        if ((e = bit_next(x->free_map, i, false)) - i > x->longest_free) return "extent segment with a free run longer than its bound";
    /* Every page is free, or in exactly one block: walk the blocks in address order. */
    for (size_t i = 0; i < UM_EXTENT_PAGES;) {
        bool header = i < FIRST_PAGE || i >= END_PAGE;
        if (header || (x->free_map[i >> 6] >> (i & 63) & 1)) {
            if (header && (x->free_map[i >> 6] >> (i & 63) & 1)) return "extent segment whose header or guard page is free";
            i++;
            continue;
        }
        if (!(x->start_map[i >> 6] >> (i & 63) & 1)) return "extent page in use in no block";
        size_t n = x->length[i];
        if (n == 0 || i + n > END_PAGE || (n << UM_EXTENT_PAGE_SHIFT) != umi_bin_size(umi_bin_of(n << UM_EXTENT_PAGE_SHIFT))) return "extent block whose length is not a class's";
        for (size_t j = i + 1; j < i + n; j++)
            if ((x->free_map[j >> 6] | x->start_map[j >> 6]) >> (j & 63) & 1) return "extent block overlapping a free page or another block";
        i += n;
    }
    return NULL;
}
