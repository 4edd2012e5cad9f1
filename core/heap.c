/* Thread heaps: made on a thread's first allocation (or taken over whole from an exited
 * thread, core/handoff.c), handed off or abandoned at thread exit, kept in a registry for
 * statistics and for the fork handler. A thread that allocates after its exit hook ran (from a
 * later TLS destructor) is served by the backup heap, a shared heap behind a lock, so nothing it
 * allocates is lost with its heap. */
#include <pthread.h>
#include <string.h>

#include "core/internal.h"
#include "os/os.h"
#include "core/check.h"
#include "core/counters.h"

/* Every thread starts on the empty heap, so it is set up statically, and goes back to it when
 * its exit hook has run (umi_tl_exited says which). The backup heap is set up when first needed
 * (umi_heap_malloc_backup): set up statically, its 1106 pointers to umi_hot_empty would be
 * relocated as the library loads, writing three OS pages, a page fault each in every process,
 * most of which never use it. */
um_heap_t umi_heap_empty = {.direct = {[0 ... UM_DIRECT_SLOTS - 1] = &umi_hot_empty},
                            .bin_hot = {[0 ... UM_BIN_COUNT - 1] = &umi_hot_empty},
                            .numa_node = UMI_NUMA_UNSET};
UM_BIG_BSS um_heap_t umi_heap_backup; /* guarded by umi_backup_lock; its tid is 0 until it is set up */
__thread um_heap_t *umi_tl_heap __attribute__((tls_model("initial-exec"))) = &umi_heap_empty;
__thread bool umi_tl_exited __attribute__((tls_model("initial-exec")));

/* A heap with no page, every allocation from it a slow path: a pooled structure before its
 * next thread, and the backup heap when first used. */
static void heap_reset(um_heap_t *heap) {
#if UM_SECURE
    /* A pooled structure goes on counting: started again from 0 at the same address, the next
     * thread's page secrets and block order would repeat those of the thread before. */
    uint64_t rng = heap->rng;
    memset(heap, 0, sizeof(*heap));
    heap->rng = rng;
#else
    memset(heap, 0, sizeof(*heap));
#endif
    heap->numa_node = UMI_NUMA_UNSET;
    for (size_t i = 0; i < UM_DIRECT_SLOTS; i++) heap->direct[i] = &umi_hot_empty;
    for (size_t i = 0; i < UM_BIN_COUNT; i++) heap->bin_hot[i] = &umi_hot_empty;
}

/* The backup heap's pages carry its own address as owner id: no thread pointer equals it, so
 * every free into them takes the remote path, which needs no lock. Under umi_backup_lock. */
static void heap_set_up_backup(void) {
    if (umi_heap_backup.tid != 0) return;
    heap_reset(&umi_heap_backup);
    umi_heap_backup.is_backup = 1;
    umi_heap_backup.tid = (uintptr_t)&umi_heap_backup;
}

um_heap_t *umi_heap_registry;
size_t umi_heap_count;
static um_heap_t *heap_pool; /* heap structures of exited threads, for reuse (never unmapped) */
/* The process's first heap structure lies in the library's .bss instead of a mapping of its
 * own: the page tables around .bss exist once the library is loaded, while a new mapping lands
 * where the process never touched, and the kernel first builds page-table pages there (each a
 * fault in the hypervisor too, on a virtual machine). A short process pays that on its first
 * malloc (docs/design.md, "Bootstrap"). It is pooled like the mapped ones and counted with them
 * as metadata. */
static um_heap_t first_heap __attribute__((aligned(64))); /* as the mapped ones */
static _Atomic bool first_heap_taken;
const void *umi_first_heap_end(void) { return (const uint8_t *)&first_heap + sizeof first_heap; }
_Atomic size_t umi_heap_mapped_bytes;  /* all heap structures ever mapped: metadata, for statistics */
static pthread_key_t exit_key;
static __thread int tl_making_heap __attribute__((tls_model("initial-exec")));

/* bin_hot[bin], and the direct[] slots that sizes of `bin` map to, now point at `target`. */
static void heap_point_bin(um_heap_t *heap, size_t bin, um_page_hot_t *target) {
    heap->bin_hot[bin] = target;
    size_t size = umi_bin_size(bin);
    if (size > UM_DIRECT_MAX) return;
    size_t lo = bin == 1 ? 0 : umi_bin_size(bin - 1) + 1, hi = size;
    if (heap->direct[hi] == target) return; /* the slots of a bin always change together */
    for (size_t i = lo; i <= hi; i++) heap->direct[i] = target;
}

/* The bin's first page is now `page`. The bins below that borrowed from its old first page
 * (umi_heap_lend) point at the empty hot words again: they borrow only from a bin's first page,
 * the one page of the bin that cannot leave the queue, and so be retired and its slot reused
 * for blocks of another size, without coming through here. */
void umi_heap_set_bin_first(um_heap_t *heap, size_t bin, um_page_t *page) {
    um_page_hot_t *target = page ? umi_page_hot(page) : &umi_hot_empty;
    um_page_hot_t *was = heap->bin_hot[bin];
    if (was != &umi_hot_empty && was != target)
        for (size_t b = bin - 1; b >= 1 && b + UM_LEND_REACH >= bin; b--)
            if (heap->bin_hot[b] == was) heap_point_bin(heap, b, &umi_hot_empty);
    heap_point_bin(heap, bin, target);
}

void umi_heap_lend(um_heap_t *heap, size_t bin, um_page_t *lender) { heap_point_bin(heap, bin, umi_page_hot(lender)); }

/* The bin's mallocs get blocks of its own size from now on, as malloc_aligned needs: a bin
 * whose size is a multiple of the alignment has every block aligned, a larger bin's may not. */
void umi_heap_stop_borrowing(um_heap_t *heap, size_t bin) {
    heap->borrows[bin] = UM_BORROW_MAX;
    if (heap->queues[bin].first == NULL && heap->bin_hot[bin] != &umi_hot_empty) heap_point_bin(heap, bin, &umi_hot_empty);
}

static void registry_add(um_heap_t *heap) {
    umi_lock(&umi_registry_lock);
    heap->reg_prev = NULL;
    heap->reg_next = umi_heap_registry;
    if (umi_heap_registry) umi_heap_registry->reg_prev = heap;
    umi_heap_registry = heap;
    umi_heap_count++;
    umi_unlock(&umi_registry_lock);
}

/* Out of the registry; its counters are kept with the exited threads' (the caller holds the
 * registry lock). */
static void registry_remove(um_heap_t *heap) {
    if (heap->reg_prev) heap->reg_prev->reg_next = heap->reg_next;
    else umi_heap_registry = heap->reg_next;
    if (heap->reg_next) heap->reg_next->reg_prev = heap->reg_prev;
    umi_heap_count--;
    umi_count_exited_heap(heap);
}

static um_heap_t *heap_new(void) {
    um_heap_t *handed = umi_heap_take_handed(); /* an exited thread's, whole (core/handoff.c) */
    if (handed != NULL) {
        registry_add(handed); /* before its pages carry our id: see core/handoff.c, fork */
        umi_heap_own_handed(handed);
        return handed;
    }
    umi_lock(&umi_registry_lock);
    um_heap_t *heap = heap_pool;
    if (heap) heap_pool = heap->reg_next;
    umi_unlock(&umi_registry_lock);
    if (heap == NULL) {
        size_t size = (sizeof(um_heap_t) + 63) & ~(size_t)63;
        bool untaken = false;
        if (atomic_compare_exchange_strong_explicit(&first_heap_taken, &untaken, true, UM_RELAXED, UM_RELAXED)) {
            heap = &first_heap;
        } else {
            heap = umi_os_map_aligned(size, 64); /* a few pages; one heap per thread is cheap */
            if (heap == NULL) return NULL;
        }
        umi_os_fault_in(heap, (uint8_t *)heap + sizeof(um_heap_t)); /* heap_reset writes it all */
        atomic_fetch_add_explicit(&umi_heap_mapped_bytes, (size + 4095) & ~(size_t)4095, UM_RELAXED);
    }
    heap_reset(heap);
    heap->tid = umi_thread_id();
    heap->purge_epoch = atomic_load_explicit(&umi_purge_epoch, UM_RELAXED);
    registry_add(heap);
    return heap;
}

static void thread_exit_hook(void *value) {
    um_heap_t *heap = value;
    if (heap != NULL && heap == umi_tl_heap) {
        umi_heap_thread_done(heap);
        umi_tl_exited = true;
        umi_tl_heap = &umi_heap_empty;
    }
}

void umi_heap_init_process(void) { pthread_key_create(&exit_key, thread_exit_hook); }

um_heap_t *umi_heap_for_thread(void) {
    um_heap_t *heap = umi_tl_heap;
    if (heap != &umi_heap_empty) return heap;
    if (umi_tl_exited) return NULL; /* after the exit hook: the caller uses the backup heap */
    if (tl_making_heap) return NULL; /* something below allocated: the caller uses the backup heap */
    tl_making_heap = 1;
    umi_process_init();
    heap = heap_new();
    if (heap != NULL) {
        umi_tl_heap = heap;
        pthread_setspecific(exit_key, heap); /* key < 32: glibc stores it without allocating */
    }
    tl_making_heap = 0;
    return heap;
}

static void registry_leave(um_heap_t *heap) {
    umi_lock(&umi_registry_lock);
    registry_remove(heap);
    umi_unlock(&umi_registry_lock);
}

/* A heap no thread will use again (abandoned, or handed off and dissolved): its structure goes
 * to the pool. */
void umi_heap_release_struct(um_heap_t *heap) {
    umi_lock(&umi_registry_lock);
    umi_count_fold_heap(heap); /* what its pages counted since it left the registry */
    heap_reset(heap);
    heap->reg_next = heap_pool;
    heap_pool = heap;
    umi_unlock(&umi_registry_lock);
}

/* The heap leaves the registry; its counters are kept, its structure goes to the pool. */
static void heap_retire(um_heap_t *heap) {
    registry_leave(heap);
    umi_heap_release_struct(heap);
}

void umi_heap_thread_done(um_heap_t *heap) {
    umi_safe_point();
    umi_extent_cache_flush(heap, true); /* before the tick: its blocks age with what the thread freed */
    umi_huge_release_kept(heap, true);
    umi_extent_tick_all(UM_EXTENT_TICK_EXIT);
    if (UM_UNLIKELY(umi_check_enabled)) umi_check_or_abort(false);
    if (!umi_heap_may_hand_off(heap)) {
        umi_segment_abandon_all(heap);
        heap_retire(heap);
        return;
    }
    umi_heap_quiesce_for_hand_off(heap); /* whole, to the next thread (core/handoff.c) */
    registry_leave(heap);
    umi_heap_hand_off(heap);
}

/* In a child after fork only the forking thread exists, but the heaps of the parent's other
 * threads are still registered, and their pages still carry those threads' ids: thread
 * pointers, which glibc hands again to the child's new threads (it reuses the dead threads'
 * stacks, and the thread pointer lies in the stack). Such a heap becomes an orphan: out of the
 * registry, never used again, its structure never reused (a pooled one could become a new
 * thread's, and the orphan's pages would name it). Nothing of it can be trusted for reuse
 * either: its thread may have been in the middle of changing a page when fork came.
 *
 * Its pages are left as they are, not a byte written: each write would copy an OS page that
 * the child shares with its parent, a page fault and a copy for every page of every other
 * thread (seconds for a parent with gigabytes of small blocks), most often just before the
 * child calls exec. What keeps them out of the child's heaps is that every path that changes
 * a heap for a page, past free()'s push, first checks that the page's heap is the caller's
 * (page->heap == umi_tl_heap), and an orphan is nobody's. A thread that got a dead one's id
 * may thus push blocks on an orphan page's free list, which nobody takes from again, and other
 * threads' frees go to its remote list or to the orphan's delayed list, which nobody collects:
 * that memory is lost to the child, as every thread-caching allocator loses a dead thread's
 * caches there. Its extent cache is lost with it (the thread may have been mid-push). Called
 * by the fork handler in the child, single-threaded. */
static um_heap_t *heap_orphans; /* linked through reg_next */

void umi_heap_orphan_others(void) {
    um_heap_t *self = umi_tl_heap, *next;
    umi_segment_forget_freeing(&umi_heap_backup);
    umi_lock(&umi_registry_lock);
    for (um_heap_t *heap = umi_heap_registry; heap != NULL; heap = next) {
        next = heap->reg_next;
        if (heap == self) continue;
        registry_remove(heap);
        umi_huge_forget_kept(heap);
        heap->orphaned = 1;
        heap->reg_prev = NULL;
        heap->reg_next = heap_orphans;
        heap_orphans = heap;
    }
    umi_unlock(&umi_registry_lock);
    if (self != &umi_heap_empty) umi_segment_forget_freeing(self);
}

/* The block after b on a heap's delayed list, which links blocks of many pages: each link is
 * encoded with the secret of its own block's page, and in the secure build the block it
 * decodes to must be a block start of a page in use. */
static um_block_t *delayed_next(um_block_t *b) {
    um_block_t *next = umi_link_get(b, UM_PAGE_SECRET(umi_page_of(umi_segment_of(b), b)));
#if UM_SECURE
    if (next == NULL) return NULL;
    unsigned entry = umi_segmap_get_block((uintptr_t)next); /* 16-byte aligned, and ours */
    um_segment_t *seg = umi_segment_of(next);
    if (!umi_map_is_segment(entry) || seg->kind >= UM_KIND_HUGE) umi_link_corrupt(b, next);
    um_page_t *page = umi_page_of(seg, next);
    if (page->slot != UM_SLOT_USED || !umi_link_ok(umi_page_hot_in(seg, page), next)) umi_link_corrupt(b, next);
#endif
    return next;
}

/* Blocks freed by other threads into pages that were full: free them here, as the owner. */
void umi_heap_collect_delayed(um_heap_t *heap) {
    um_block_t *b = atomic_exchange_explicit(&heap->delayed_free, NULL, memory_order_acquire);
    while (b != NULL) {
        UM_COUNT_ADD(heap->stats.remote_frees, 1);
        um_block_t *next = delayed_next(b);
        um_segment_t *seg = umi_segment_of(b);
        umi_key_set(b, 0); /* it was keyed by the remote free; local free keys it again */
        um_page_t *page = umi_page_of(seg, b);
        /* back in the queue at once, whatever it holds: the wake-up set the page's delay state
         * to NORMAL, so its next remote frees wake nobody (umi_page_remote_free) */
        if (atomic_load_explicit(&UM_PAGE_OWNER(page), UM_RELAXED) & UM_PAGE_IN_FULL) umi_page_unfull(heap, page);
        umi_page_local_free_slow(heap, page, b);
        b = next;
    }
}

void *umi_heap_malloc_backup(size_t size) {
    umi_process_init();
    umi_lock(&umi_backup_lock);
    heap_set_up_backup();
    umi_heap_collect_delayed(&umi_heap_backup);
    void *p = umi_malloc_generic(size, &umi_heap_backup);
    umi_unlock(&umi_backup_lock);
    umi_safe_point(); /* what the slow path could not run under the lock */
    return p;
}
