/* Counting: what the allocation paths record for the statistics, and the safe point where the
 * statistics may ask allocating threads for work.
 *
 * The core counts; it never reads, sums or dumps (stats/ does, on the reader's side). Nothing
 * here runs on malloc's or free's fast path. Per-class counts are each page's own allocation
 * and free counts, which the fast paths keep anyway (um_page_hot_t), folded into the heap's
 * when a page leaves it (um_heap_stats_t); calls of the entry points other than malloc and free
 * (those two are derived), failures and the rest are process-wide relaxed atomics here. Built
 * with -DUM_NO_STATS=1 (make build/nostats/libumalloc.so) every counting point compiles to
 * nothing, so the benchmarks can show what counting costs. */
#ifndef UM_COUNTERS_H
#define UM_COUNTERS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/internal.h"
#include "umalloc.h"

_Static_assert(UM_CALLS == UM_CALL_COUNT, "core/types.h and include/umalloc.h disagree on the entry points");
_Static_assert(UM_BIN_COUNT <= UM_STATS_CLASSES, "a statistics entry for each size class");

/* Process-wide counters (relaxed atomics, slow paths only), read by stats/snapshot.c. */
typedef struct um_counters_s {
    _Atomic uint64_t calls[UM_CALL_COUNT];        /* entry points run by a thread without a heap */
    _Atomic uint64_t internal_allocs, internal_frees;
    _Atomic uint64_t failed, invalid, null_frees;
    _Atomic uint64_t huge_allocs, huge_frees, huge_usable_total;
    _Atomic uint64_t carved;                      /* bytes carved into pooled blocks now */
    _Atomic uint64_t next_sample;                 /* carved bytes at which a peak sample is due */
    _Atomic uint64_t peak_live;                   /* highest live bytes seen (see stats/stats.h) */
    _Atomic uint64_t sampled_pooled_live;         /* live bytes outside huge blocks at the last snapshot */
    _Atomic uint64_t node_mapped[UM_STATS_NODES];
    _Atomic uint64_t kind_mapped[UM_PAGES_KINDS];
    _Atomic uint64_t node_migrated[UM_STATS_NODES]; /* pages um_numa_migrate moved to each node */
    _Atomic uint64_t locked;                      /* of the mapped bytes, those locked (UM_PAGES_LOCKED) */
    um_heap_stats_t exited;                       /* folded counters of exited threads (registry lock) */
    uint64_t exited_threads;                      /* (registry lock) */
} um_counters_t;
extern um_counters_t umi_counters;

/* Raise the peak of live bytes to `live` if that is higher. */
void umi_count_peak(uint64_t live);

/* ---- the safe point ------------------------------------------------------------------------ */
/* Statistics work that must not run where it is asked for (a dump a signal could not make
 * because the interrupted thread held a lock; a peak sample, which walks every heap) is
 * requested here and run by the next allocation slow path that holds no lock, with the heap in
 * a consistent state (umi_safe_point), or at thread exit. Never inside a lock, a fork handler
 * or free(). */
enum { UM_SAFE_DUMP = 1, UM_SAFE_SAMPLE = 2 };
extern _Atomic unsigned umi_safe_pending;
void umi_safe_point_register(void (*work)(unsigned what)); /* stats/, once, at init */
void umi_safe_point_request(unsigned what);                 /* async-signal-safe */
void umi_safe_point_run(void);
/* The one call from the core up into stats/: once, at process start-up, after the options are
 * read, so that the dump signal and the at-exit dump are set up in every program, the ones that
 * link the static library included (stats/signal.c). */
void umi_stats_init(void);
static inline void umi_safe_point(void) {
    if (__builtin_expect(atomic_load_explicit(&umi_safe_pending, memory_order_relaxed) != 0, 0)) umi_safe_point_run();
}

/* ---- counting points (slow paths only) ----------------------------------------------------- */
#if defined(UM_NO_STATS) && UM_NO_STATS
#define UM_COUNT_ADD(field, n) ((void)0)
static inline void umi_count_page_gone(um_heap_t *heap, um_page_t *page) { (void)heap; (void)page; }
static inline void umi_count_carved(size_t bytes) { (void)bytes; }
static inline void umi_count_uncarved(size_t bytes) { (void)bytes; }
static inline void umi_count_exited_heap(um_heap_t *heap) { (void)heap; }
static inline void umi_count_fold_heap(um_heap_t *heap) { (void)heap; }
static inline void umi_count_call(unsigned call) { (void)call; }
static inline void umi_count_internal(int allocs, int frees) { (void)allocs; (void)frees; }
static inline void umi_count_sized_free(int counted) { (void)counted; }
static inline void umi_count_failed(void) {}
static inline void umi_count_invalid(void) {}
static inline void umi_count_null_free(void) {}
static inline void umi_count_huge(int sign, size_t usable) { (void)sign; (void)usable; }
static inline void umi_count_mapped(const um_segment_t *seg, int sign) { (void)seg; (void)sign; }
static inline void umi_count_mapped_bytes(int node, unsigned page_kind, size_t bytes, int sign) { (void)node; (void)page_kind; (void)bytes; (void)sign; }
static inline void umi_count_migrated(int node, uint64_t pages) { (void)node; (void)pages; }
#else
#define UM_COUNT_ADD(field, n) UM_OWNER_ADD(field, n)
void umi_count_page_gone(um_heap_t *heap, um_page_t *page); /* a page slot goes back to its segment */
void umi_count_carved(size_t bytes);      /* bytes newly carved into blocks */
void umi_count_uncarved(size_t bytes);
void umi_count_exited_heap(um_heap_t *heap); /* a thread's counters outlive its heap (registry lock) */
void umi_count_fold_heap(um_heap_t *heap);   /* the same, for a heap no thread had (registry lock) */
/* An entry point other than malloc/free ran; blocks an entry point made or freed itself. Inline:
 * realloc, calloc and the aligned entry points count on every call, and a call into this file
 * and back cost realloc a sixth of its instructions. A thread without a heap counts in the
 * process-wide atomics. */
void umi_count_call_shared(unsigned call);
void umi_count_internal_shared(int allocs, int frees);
/* Does the thread count in its heap (not the empty one, before its first allocation or after its
 * exit hook)? A compare and a branch: a helper that returned the heap or NULL cost a setne, a
 * test and a NULL test more. */
static inline bool umi_count_in_heap(const um_heap_t *h) { return h != &umi_heap_empty; }
static inline void umi_count_call(unsigned call) {
    um_heap_t *h = umi_tl_heap;
    if (UM_LIKELY(umi_count_in_heap(h))) UM_OWNER_ADD(h->stats.calls[call], 1);
    else umi_count_call_shared(call);
}
static inline void umi_count_internal(int allocs, int frees) {
    um_heap_t *h = umi_tl_heap;
    if (UM_LIKELY(umi_count_in_heap(h))) {
        UM_OWNER_ADD(h->stats.internal_allocs, (uint64_t)allocs);
        UM_OWNER_ADD(h->stats.internal_frees, (uint64_t)frees);
    } else {
        umi_count_internal_shared(allocs, frees);
    }
}
/* free_sized ran (counted: a block, not NULL). Inline as the two above: a call here made every
 * free_sized spend as many instructions counting as freeing (C++ sized delete, larson sized=1). */
static inline void umi_count_sized_free(int counted) {
    um_heap_t *h = umi_tl_heap;
    if (UM_LIKELY(umi_count_in_heap(h))) {
        UM_OWNER_ADD(h->stats.calls[UM_CALL_FREE_SIZED], 1);
        UM_OWNER_ADD(h->stats.internal_frees, (uint64_t)counted);
    } else {
        umi_count_call_shared(UM_CALL_FREE_SIZED);
        umi_count_internal_shared(0, counted);
    }
}
void umi_count_failed(void);              /* an allocation returned NULL */
void umi_count_invalid(void);             /* a free of something that is not a live block */
void umi_count_null_free(void);
void umi_count_huge(int sign, size_t usable); /* a huge block was handed out (+1), freed (-1) or resized (0) */
void umi_count_mapped(const um_segment_t *seg, int sign);
/* The same for memory that is not a segment (cached huge pieces). */
void umi_count_mapped_bytes(int node, unsigned page_kind, size_t bytes, int sign);
void umi_count_migrated(int node, uint64_t pages); /* um_numa_migrate moved `pages` to `node` */
#endif

#endif
