/* Statistics: the counters every allocation path feeds, and the snapshot that sums them.
 *
 * Nothing here runs on malloc's or free's fast path. Per-class counts are each page's own
 * allocation and free counts, which the fast paths keep anyway (um_page_hot_t), folded into the
 * heap's when a page leaves it (see um_heap_stats_t); per-entry-point
 * calls from the entry points that are not malloc/free (those two are derived: all blocks
 * handed out or given back, less the ones other entry points made), and the rest from the OS
 * layer's and the huge-block path's own atomics. The dumps (text, JSON, on a signal, at exit)
 * are in stats/dump.c and stats/signal.c; docs/stats.md describes every field. */
#ifndef UM_STATS_H
#define UM_STATS_H

#include <stddef.h>

#include "core/types.h"
#include "umalloc.h"

_Static_assert(UM_CALLS == UM_CALL_COUNT, "core/types.h and include/umalloc.h disagree on the entry points");
_Static_assert(UM_BIN_COUNT == UM_STATS_CLASSES, "one statistics class per size class");

/* Fill *out. Never allocates. With in_signal set it refuses (returns -1, touching nothing) when
 * the calling thread holds, or is acquiring, an umalloc lock: the interrupted code would never
 * release it. The caller then sets umi_stats_deferred, and the dump runs when that thread
 * releases its last lock (umi_stats_run_deferred). Returns 0 on success.
 *
 * peak_live_bytes is exact live bytes at sampled moments: every snapshot, and every time the
 * bytes carved into pooled blocks (a bound on live bytes that only slow paths move) pass 9/8 of
 * what they were at the last sample, and 1 MiB more at least; a huge block, whose bytes are counted exactly, raises it to
 * the pooled live bytes of the last sample plus the huge bytes live now. Live bytes can only reach a new high by carving new blocks or
 * by reusing ones carved before, so the true peak is at most 9/8 of the reported one plus what
 * was reused between samples; in practice the two agree to a few percent. */
int umi_stats_snapshot(um_stats_t *out, int in_signal);
extern _Atomic int umi_stats_deferred;
void umi_stats_run_deferred(void);        /* stats/signal.c */
void umi_stats_init(void);                /* stats/signal.c: signal handler, at-exit dump */

/* ---- counting points (slow paths only) ---------------------------------------------------- */
/* Built with -DUM_NO_STATS=1 (make build/nostats/libumalloc.so) they compile to nothing, so the
 * benchmarks can show what counting costs (docs/benchmarks.md). */
#if defined(UM_NO_STATS) && UM_NO_STATS
#define UM_STAT_ADD(field, n) ((void)0)
static inline void umi_stats_page_gone(um_heap_t *heap, um_page_t *page) { (void)heap; (void)page; }
static inline void umi_stats_carved(size_t bytes) { (void)bytes; }
static inline void umi_stats_uncarved(size_t bytes) { (void)bytes; }
static inline void umi_stats_fold_exited(um_heap_t *heap) { (void)heap; }
static inline void umi_stats_call(unsigned call) { (void)call; }
static inline void umi_stats_internal(int allocs, int frees) { (void)allocs; (void)frees; }
static inline void umi_stats_failed(void) {}
static inline void umi_stats_invalid(void) {}
static inline void umi_stats_null_free(void) {}
static inline void umi_stats_huge(int sign, size_t usable) { (void)sign; (void)usable; }
static inline void umi_stats_mapped(const um_segment_t *seg, int sign) { (void)seg; (void)sign; }
static inline void umi_stats_mapped_bytes(int node, unsigned page_kind, size_t bytes, int sign) { (void)node; (void)page_kind; (void)bytes; (void)sign; }
#else
#define UM_STAT_ADD(field, n) UM_OWNER_ADD(field, n)
void umi_stats_page_gone(um_heap_t *heap, um_page_t *page); /* a page slot goes back to its segment */
void umi_stats_carved(size_t bytes);      /* bytes newly carved into blocks */
void umi_stats_uncarved(size_t bytes);
void umi_stats_fold_exited(um_heap_t *heap); /* a thread's counters outlive its heap */
void umi_stats_call(unsigned call);       /* an entry point other than malloc/free ran */
void umi_stats_internal(int allocs, int frees); /* blocks an entry point made or freed itself */
void umi_stats_failed(void);              /* an allocation returned NULL */
void umi_stats_invalid(void);             /* a free of something that is not a live block */
void umi_stats_null_free(void);
void umi_stats_huge(int sign, size_t usable); /* a huge block was handed out (+1), freed (-1) or resized (0) */
void umi_stats_mapped(const um_segment_t *seg, int sign);
/* The same for memory that is not a segment (cached huge pieces). */
void umi_stats_mapped_bytes(int node, unsigned page_kind, size_t bytes, int sign);
#endif

#define UM_STAT_SEGMENT_MAPPED(seg) umi_stats_mapped((seg), 1)
#define UM_STAT_SEGMENT_UNMAPPED(seg) umi_stats_mapped((seg), -1)

#endif
