/* Handing a whole heap to the next thread.
 *
 * A program that replaces its threads (a thread per request, worker pools that are recycled,
 * threads run in rounds) starts a new thread soon after one exits, and the new one
 * wants what the old one had: pages of the same size classes, blocks freed and ready, memory
 * resident. So a thread that exits hands its heap off whole: its empty pages go back and are
 * purged as always (core/abandon.c), but the pages that still hold live blocks keep their
 * queues, free lists and warm memory, owned by no thread (every free into them takes the remote
 * path). The next thread that needs a heap takes the newest handed-off
 * one and owns all of it at once, instead of adopting abandoned segments class by class; it
 * collects what other threads freed meanwhile. glibc reuses an exited thread's arena the same
 * way.
 *
 * At most UM_HANDOFF_MAX heaps wait at a time (beyond that an exiting thread abandons its
 * segments one by one, for adoption). A heap nobody took within UM_RETAIN_MS is dissolved by
 * the periodic sweep of a living thread into abandoned segments, so that its memory is not
 * pinned when no thread comes. um_trim dissolves them all.
 *
 * Lock: umi_abandoned_lock guards the list (heaps linked through reg_next / reg_prev, newest
 * at the head). A heap off the list belongs to whoever took it.
 *
 * fork: a heap is in the registry while its pages carry a thread's id (so that the child's
 * fork handler finds it, umi_heap_orphan_others), on the handed-off list once they carry none,
 * and in neither only in between, when they carry none either: a child forked then merely
 * loses that heap's memory, never hands its pages to a thread that has the dead one's id. */
#include "core/internal.h"
#include "core/counters.h"
#include "os/os.h"

#define UM_HANDOFF_MAX 16

static um_heap_t *handed_head, *handed_tail;
_Atomic size_t umi_handed_count; /* written under the lock, read without it as a hint */

bool umi_heap_may_hand_off(const um_heap_t *heap) {
    return !heap->is_backup && atomic_load_explicit(&umi_handed_count, UM_RELAXED) < UM_HANDOFF_MAX;
}

void umi_heap_quiesce_for_hand_off(um_heap_t *heap) {
    umi_segment_stop_delayed(heap);
    umi_segment_give_back(heap, UM_PURGE_HANDOFF);
    umi_segment_strip_owners(heap);
    heap->tid = 0;
}

void umi_heap_hand_off(um_heap_t *heap) {
    heap->handed_at_ms = umi_os_now_ms();
    umi_lock(&umi_abandoned_lock);
    heap->handed = 1;
    heap->reg_prev = NULL;
    heap->reg_next = handed_head;
    if (handed_head) handed_head->reg_prev = heap;
    else handed_tail = heap;
    handed_head = heap;
    atomic_fetch_add_explicit(&umi_handed_count, 1, UM_RELAXED);
    umi_unlock(&umi_abandoned_lock);
}

/* Off the list (the caller holds the lock). */
static void unlink_handed(um_heap_t *heap) {
    if (heap->reg_prev) heap->reg_prev->reg_next = heap->reg_next;
    else handed_head = heap->reg_next;
    if (heap->reg_next) heap->reg_next->reg_prev = heap->reg_prev;
    else handed_tail = heap->reg_prev;
    heap->reg_next = heap->reg_prev = NULL;
    heap->handed = 0;
    atomic_fetch_sub_explicit(&umi_handed_count, 1, UM_RELAXED);
}

um_heap_t *umi_heap_take_handed(void) {
    if (atomic_load_explicit(&umi_handed_count, UM_RELAXED) == 0) return NULL;
    umi_lock(&umi_abandoned_lock);
    um_heap_t *heap = handed_head;
    if (heap != NULL) unlink_handed(heap);
    umi_unlock(&umi_abandoned_lock);
    return heap;
}

void umi_heap_own_handed(um_heap_t *heap) {
    heap->tid = umi_thread_id();
    heap->extent_arena = heap->extent_ops = heap->extent_busy = 0; /* a new thread starts at the first arena (core/extent.c) */
    heap->extent_cache_arena = 0;
    heap->purge_epoch = atomic_load_explicit(&umi_purge_epoch, UM_RELAXED);
    umi_segment_take_owners(heap);
}

void umi_heap_dissolve_handed(bool all) {
    uint64_t now = umi_os_now_ms();
    UM_TEST_HOOK(UM_HOOK_CLOCK_READ, (void *)"handed heaps");
    while (atomic_load_explicit(&umi_handed_count, UM_RELAXED) != 0) {
        umi_lock(&umi_abandoned_lock);
        um_heap_t *heap = handed_tail; /* the oldest */
        if (heap != NULL && (all || umi_os_ms_since(heap->handed_at_ms, now) >= UM_RETAIN_MS)) unlink_handed(heap);
        else heap = NULL;
        umi_unlock(&umi_abandoned_lock);
        if (heap == NULL) return;
        umi_segment_give_back(heap, UM_PURGE_ALL); /* pages emptied by remote frees while it waited */
        umi_segment_abandon_segments(heap); /* owners already stripped, states NEVER */
        umi_heap_release_struct(heap);      /* with the counts of the pages given back */
    }
}

void umi_heap_each_handed(void (*fn)(um_heap_t *, void *), void *arg) {
    for (um_heap_t *heap = handed_head; heap != NULL; heap = heap->reg_next) fn(heap, arg);
}
