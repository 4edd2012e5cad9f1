/* Counting points and the safe point (see core/counters.h). */
#include "core/counters.h"

#include <string.h>

#include "base/lock.h"

um_counters_t umi_counters;

_Atomic unsigned umi_safe_pending;
static void (*_Atomic safe_work)(unsigned what); /* set once at start-up, read by any thread */

#define ADD(field, n) atomic_fetch_add_explicit(&(field), (n), UM_RELAXED)

void umi_count_peak(uint64_t live) {
    uint64_t peak = atomic_load_explicit(&umi_counters.peak_live, UM_RELAXED);
    while (live > peak && !atomic_compare_exchange_weak(&umi_counters.peak_live, &peak, live)) {}
}

void umi_safe_point_register(void (*work)(unsigned what)) { atomic_store_explicit(&safe_work, work, memory_order_release); }

void umi_safe_point_request(unsigned what) { atomic_fetch_or_explicit(&umi_safe_pending, what, UM_RELAXED); }

void umi_safe_point_run(void) {
    void (*work)(unsigned) = atomic_load_explicit(&safe_work, memory_order_acquire);
    if (work == NULL || umi_locks_held_by_me()) return; /* the next safe point takes it */
    unsigned what = atomic_exchange_explicit(&umi_safe_pending, 0, memory_order_acquire);
    if (what != 0) work(what);
}

#if !(defined(UM_NO_STATS) && UM_NO_STATS)

void umi_count_call_shared(unsigned call) { ADD(umi_counters.calls[call], 1); }

void umi_count_internal_shared(int allocs, int frees) {
    ADD(umi_counters.internal_allocs, (uint64_t)allocs);
    ADD(umi_counters.internal_frees, (uint64_t)frees);
}

void umi_count_failed(void) { ADD(umi_counters.failed, 1); }
void umi_count_invalid(void) { ADD(umi_counters.invalid, 1); }
void umi_count_null_free(void) { ADD(umi_counters.null_frees, 1); }

/* Huge blocks need no walk: their live bytes are an exact atomic. A new or grown one raises the
 * peak to (pooled live at the last snapshot + huge live now), without the cost of a snapshot.
 * sign: +1 handed out, -1 freed, 0 resized. */
void umi_count_huge(int sign, size_t usable) {
    if (sign > 0) {
        ADD(umi_counters.huge_allocs, 1);
        ADD(umi_counters.huge_usable_total, usable);
    } else if (sign < 0) {
        ADD(umi_counters.huge_frees, 1);
        return;
    }
    umi_count_peak(atomic_load_explicit(&umi_counters.sampled_pooled_live, UM_RELAXED) +
                   atomic_load_explicit(&umi_huge_live_bytes, UM_RELAXED));
}

void umi_count_mapped_bytes(int node, unsigned page_kind, size_t bytes, int sign) {
    unsigned kind = (page_kind & 0x7fu) < UM_PAGES_KINDS ? (page_kind & 0x7fu) : 0;
    uint64_t n = sign > 0 ? bytes : (uint64_t)0 - bytes; /* unsigned wrap-around subtracts */
    ADD(umi_counters.kind_mapped[kind], n);
    if (page_kind & 0x80u) ADD(umi_counters.locked, n); /* UM_PAGES_LOCKED: hugepages/pagesize.h */
    if (node == UMI_NUMA_SPREAD) {
        /* Spread over the process's node list (interleave; bind or preferred to several
         * nodes): counted as equal shares, the rest of the division on the first node, so that
         * unmapping the same bytes takes back exactly what mapping them added. */
        uint64_t nodes = umi_numa_process_nodes(), share = bytes / (uint64_t)__builtin_popcountll(nodes);
        uint64_t rest = bytes - share * (uint64_t)__builtin_popcountll(nodes);
        for (int i = 0; i < UM_STATS_NODES; i++) {
            if (!(nodes >> i & 1)) continue;
            uint64_t b = share + rest;
            rest = 0;
            ADD(umi_counters.node_mapped[i], sign > 0 ? b : (uint64_t)0 - b);
        }
        return;
    }
    node = node < 0 ? 0 : node >= UM_STATS_NODES ? UM_STATS_NODES - 1 : node;
    ADD(umi_counters.node_mapped[node], n);
}

void umi_count_migrated(int node, uint64_t pages) {
    if (node >= 0 && node < UM_STATS_NODES) ADD(umi_counters.node_migrated[node], pages);
}

void umi_count_mapped(const um_segment_t *seg, int sign) {
    umi_count_mapped_bytes(seg->node, seg->page_kind, seg->map_size, sign);
}

/* A page slot leaves its heap: its counts go to the heap's, or they would vanish (the slot's
 * next page starts from zero). Remote frees not yet collected count as frees. */
void umi_count_page_gone(um_heap_t *heap, um_page_t *page) {
    um_page_hot_t *hot = umi_page_hot(page);
    uintptr_t tf = atomic_load_explicit(&page->thread_free, UM_RELAXED);
    UM_OWNER_ADD(heap->stats.mallocs[page->bin], hot->allocs);
    UM_OWNER_ADD(heap->stats.frees[page->bin], hot->frees + UM_TF_COUNT(tf));
    umi_count_uncarved((size_t)page->capacity * page->block_size);
}

void umi_count_fold_heap(um_heap_t *heap) {
    const uint64_t *src = (const uint64_t *)&heap->stats;
    uint64_t *dst = (uint64_t *)&umi_counters.exited;
    for (size_t i = 0; i < sizeof(um_heap_stats_t) / sizeof(uint64_t); i++) dst[i] += src[i];
    memset(&heap->stats, 0, sizeof heap->stats);
}

void umi_count_exited_heap(um_heap_t *heap) {
    umi_count_fold_heap(heap);
    umi_counters.exited_threads++;
}

/* Live bytes can reach a new high only through blocks carved since the last sample or reused:
 * each time carved bytes pass 9/8 of what they were at the last sample (and 1 MiB more at
 * least, so a small program pays for a handful of samples), the statistics are asked for one
 * at the next safe point. The first is due at 1 MiB: a sample fills a 5 KiB snapshot, and a
 * process that never carves that much (a shell's `ls`, a `sed` in a pipe) would pay its page
 * faults at start-up for a peak under 1 MiB, which the statistics then give as the live bytes
 * at the time they are read. */
#define UM_SAMPLE_FIRST ((uint64_t)1 << 20)
void umi_count_carved(size_t bytes) {
    uint64_t now = ADD(umi_counters.carved, bytes) + bytes;
    uint64_t next = atomic_load_explicit(&umi_counters.next_sample, UM_RELAXED);
    if (now < next || now < UM_SAMPLE_FIRST) return;
    uint64_t step = now / 8 > UM_SAMPLE_FIRST ? now / 8 : UM_SAMPLE_FIRST;
    if (atomic_compare_exchange_strong(&umi_counters.next_sample, &next, now + step)) umi_safe_point_request(UM_SAFE_SAMPLE);
}

void umi_count_uncarved(size_t bytes) { atomic_fetch_sub_explicit(&umi_counters.carved, bytes, UM_RELAXED); }
#endif /* !UM_NO_STATS */
