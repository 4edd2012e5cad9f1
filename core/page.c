/* Pages: carving blocks, the per-bin page queues of a heap, collecting frees, and the remote
 * free protocol with its "delayed free" wake-up for full pages. */
#include <sched.h>

#include "core/internal.h"
#include "os/os.h"
#include "core/check.h"
#include "core/counters.h"
#include "hugepages/pagesize.h"

/* The hot words every empty heap's direct[] points at. Its free list is NULL, so the fast path
 * falls through to the slow path without a separate "is this thread initialised?" test. */
um_page_hot_t umi_hot_empty;

/* Carve at most this many bytes of new blocks at a time: a fresh page is touched gradually,
 * so a thread that allocates three blocks of a class doesn't fault in 64 KiB, and a program
 * that uses many classes a little (sizes spread over 8..1000 bytes, a few blocks each) touches
 * 4 KiB a class. Classes of 128 bytes and less carve as much again as they have carved, from
 * 4 KiB up to 16 KiB (at least 128 blocks), so that the tiny classes a program allocates in bulk
 * soon take the slow path only once per 128+ blocks, while a thread that allocates a few blocks
 * of several tiny classes (one of a thousand threads of a server, each with a page of each class
 * it uses) touches 4 KiB a class and not 16, and a class whose blocks in use outgrow its first
 * carve by a few (two threads handing batches to each other) touches 4 KiB more, not 16. */
#define UM_EXTEND_BYTES 4096
#define UM_EXTEND_TINY_MAX 128
#define UM_EXTEND_TINY_BYTES (4096 * 4)
#if UM_SECURE
/* The secure build hands out the fresh blocks of each group of this many in a random order:
 * one of 256 random permutations, drawn at start-up (so that they differ from run to run) and
 * picked at random for each group. Cheaper than shuffling each block (no array, 8 random bits
 * a group): a refill that carves a page again after its free list was forgotten pays it. */
#define UM_CARVE_GROUP 8
static uint8_t carve_perm[256][UM_CARVE_GROUP];

void umi_page_init_process(void) {
    uint64_t ctr = umi_cookie; /* splitmix64, as umi_heap_random, from the process's random cookie */
    for (size_t p = 0; p < 256; p++) {
        for (size_t i = 0; i < UM_CARVE_GROUP; i++) carve_perm[p][i] = (uint8_t)i;
        for (size_t i = UM_CARVE_GROUP - 1; i > 0; i--) {
            uint64_t z = (ctr += 0x9e3779b97f4a7c15u);
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
            size_t j = (size_t)((z ^ (z >> 31)) % (i + 1));
            uint8_t t = carve_perm[p][i];
            carve_perm[p][i] = carve_perm[p][j];
            carve_perm[p][j] = t;
        }
    }
}
#endif

/* Where a page's blocks go: its slot, less the segment header (page 0) and, in a small page,
 * the hot words at the end (um_page_hot_t). The slot is [area, area + size + umi_page_tail). */
uint8_t *umi_page_area(um_segment_t *seg, um_page_t *page, size_t *size) {
    size_t psize = (size_t)1 << seg->page_shift;
    uint8_t *area = (uint8_t *)seg + (size_t)page->index * psize;
    if (page->index == 0) { /* the first page shares its slot with the segment header */
        size_t hdr = (sizeof(um_segment_t) + 4095) & ~(size_t)4095;
        area += hdr;
        psize -= hdr;
    }
    if (UM_GUARD_SIZE != 0 && seg->kind != UM_KIND_SMALL && page->index + 1u == seg->page_count)
        psize -= UM_GUARD_SIZE; /* the segment's guard page (a small segment's is in a slot of its own) */
    *size = psize - umi_page_tail(seg);
    return area;
}

void umi_page_init(um_heap_t *heap, um_page_t *page, size_t bin) {
    um_segment_t *seg = umi_segment_of(page);
    size_t area_size;
    uint8_t *area = umi_page_area(seg, page, &area_size);
    size_t bsize = umi_bin_size(bin);
    page->start = area;
    /* what a page of this bin had carved in the slot is resident still, unless it was purged */
    if (page->is_zero || page->bin != bin) page->recarve = 0;
    UM_SHARED_WRITE(page->block_size, (uint32_t)bsize);
    UM_SHARED_WRITE(page->bin, (uint16_t)bin);
    UM_SHARED_WRITE(page->reserved, (uint32_t)(area_size / bsize));
    page->block_div = ~(uint64_t)0 / bsize + 1;
    UM_SHARED_WRITE(page->capacity, 0);
    um_page_hot_t *hot = umi_page_hot(page);
    /* A small page carves first the blocks that lie in its last OS page, with its hot words,
     * which the page's set-up writes anyway: a class a thread or a short process uses a little
     * costs one page fault, not two. Then from its start, in address order. */
    size_t rotation = 0;
    if (seg->kind == UM_KIND_SMALL) {
        uintptr_t last_os_page = (uintptr_t)hot & ~(uintptr_t)4095;
        if (last_os_page > (uintptr_t)area) rotation = (last_os_page - (uintptr_t)area + bsize - 1) / bsize;
        if (rotation >= page->reserved) rotation = 0; /* no block fits beside the hot words */
    }
    page->rotation = (uint16_t)rotation;
    if (seg->kind == UM_KIND_SMALL && page->is_zero && seg->page_kind == UM_PAGES_4K) umi_os_fault_in(hot, hot + 1);
    hot->guard[0] = hot->guard[1] = UM_PAGE_GUARD;
    hot->free = NULL;
#if UM_SECURE
    hot->secret = page->secret = umi_heap_random(heap);
    hot->start = (uintptr_t)area;
    hot->span = (uint64_t)page->reserved * bsize;
    hot->block_div = page->block_div;
#endif
    UM_SAN_POISON(area, area_size); /* blocks are opened one by one as they are handed out */
    UM_SHARED_WRITE(hot->allocs, 0);
    UM_SHARED_WRITE(hot->frees, 0);
    hot->requeue_used = 0;
    page->next = page->prev = NULL;
    page->swept_allocs = ~(uint64_t)0;
    atomic_store_explicit(&page->thread_free, UM_DELAY_NORMAL, UM_RELAXED);
    atomic_store_explicit(&page->heap, heap, UM_RELAXED);
    /* release: whoever sees the owner sees the guard (see um_page_hot_t) */
    atomic_store_explicit(&hot->owner, heap->tid, memory_order_release);
}

/* The carve of blocks c0 .. c0 + n - 1 of a page whose uncarved blocks are fresh from the OS
 * writes a link into each, and the program then writes what it asked for: fault their OS pages
 * in with one call (umi_os_fault_in). Not the pages written before: the one the block before
 * ends in (carved already) and the hot words' (page_init's). The last page may hold only the
 * tail of the last block; it holds the next carve's first block as well. Blocks of up to 4 KiB
 * only: a bigger one's pages past its first are the program's to touch or not. */
static void carve_fault_in(const um_page_t *page, size_t c0, size_t n) {
    um_segment_t *seg = umi_segment_of(page);
    size_t bsize = page->block_size;
    size_t first = umi_block_pos(page, c0), last = umi_block_pos(page, c0 + n - 1);
    if (seg->page_kind != UM_PAGES_4K || bsize > 4096 || last < first) return; /* a carve that wraps is the one beside the hot words */
    uintptr_t lo = (uintptr_t)page->start + first * bsize, hi = (uintptr_t)page->start + (last + 1) * bsize;
    if (first != 0) lo = (lo + 4095) & ~(uintptr_t)4095; /* the block before ends in lo's page */
    if (seg->kind == UM_KIND_SMALL) {
        uintptr_t hot_page = (uintptr_t)umi_page_hot(page) & ~(uintptr_t)4095;
        if (hi > hot_page) hi = hot_page;
    }
    if (hi > lo) umi_os_fault_in((void *)lo, (void *)hi);
}

/* Thread more never-used blocks onto the free list, in address order (the secure build
 * shuffles them locally, see below): a small page's first carve is the blocks beside its hot
 * words, in its last OS page; the next ones go on from the page's start (um_page_t.rotation).
 *  - Why upwards: the blocks a program allocates one after another then lie one after another,
 *    the way it will most likely walk them, and the hardware prefetchers follow.
 *  - And only the first carve beside the hot words: carved all from the end down, the blocks in
 *    use would share the page's last 4 KiB, and with it L1 sets and low address bits, with the
 *    hot words of every small page: in a program with many classes in use and few blocks in
 *    each, blocks and hot words would evict each other from the L1 cache. */
static void page_extend(um_heap_t *heap, um_page_t *page) {
    size_t bsize = page->block_size;
    /* a page's first carve is at most 4 KiB whatever the class (and the blocks beside the hot
     * words, below): see UM_EXTEND_BYTES */
    size_t bytes = UM_EXTEND_BYTES;
    if (bsize <= UM_EXTEND_TINY_MAX) {
        size_t carved = (size_t)page->capacity * bsize;
        bytes = carved < UM_EXTEND_BYTES ? UM_EXTEND_BYTES : carved > UM_EXTEND_TINY_BYTES ? UM_EXTEND_TINY_BYTES : carved;
    }
    size_t n = bytes / bsize;
    if (n == 0) n = 1;
    /* Blocks carved before the page's free list was forgotten (umi_page_forget_free_list), or by
     * the slot's previous page of this class, are resident already: carving them again a chunk
     * at a time would only take the slow path more often, in the programs that empty and
     * refill their pages round after round. */
    if (page->recarve > page->capacity + n) n = page->recarve - page->capacity;
    size_t left = page->reserved - page->capacity; /* blocks not carved yet */
    if (n > left) n = left;
    /* The blocks beside the hot words make a carve of their own (um_page_t.rotation), unless
     * the slot holds more resident already. */
    size_t beside = page->reserved - page->rotation;
    if (page->rotation != 0 && page->capacity < beside && page->recarve <= beside && n > beside - page->capacity)
        n = beside - page->capacity;
    size_t c0 = page->capacity;
    if (page->is_zero && c0 >= page->recarve) carve_fault_in(page, c0, n);
#define UM_CARVED_AT(i) ((um_block_t *)(page->start + umi_block_pos(page, c0 + (i)) * bsize))
    um_page_hot_t *hot = umi_page_hot(page);
    uintptr_t secret = UM_HOT_SECRET(hot);
#if UM_SECURE
    /* In a random order, locally: the chunk is cut in groups of 8 blocks, taken in address
     * order, and each group's blocks go out in one of 256 random orders (carve_perm), picked
     * at random. Which block comes after a given one can't be told from its address, so an
     * overflow can't be aimed at the block the program allocates next; and blocks allocated
     * together still lie close together. A full shuffle of each 4-16 KiB chunk cost python's
     * benchmark a third more CPU time (docs/security.md). */
    um_block_t *head = NULL, *last = NULL;
    uint64_t rnd = 0;
    for (size_t g = 0; g < n; g += UM_CARVE_GROUP) {
        if ((g & (8 * UM_CARVE_GROUP - 1)) == 0) rnd = umi_heap_random(heap); /* 8 random bits a group */
        const uint8_t *perm = carve_perm[rnd & 255];
        rnd >>= 8;
        for (size_t k = 0; k < UM_CARVE_GROUP; k++) {
            size_t i = g + perm[k];
            if (i >= n) continue; /* the last group may be short */
            um_block_t *b = UM_CARVED_AT(i);
            if (last != NULL) umi_link_set(last, b, secret);
            else head = b;
            last = b;
        }
    }
    umi_link_set(last, hot->free, secret); /* after any freed ones: cold */
    hot->free = head;
#else
    (void)heap;
    for (size_t i = 0; i + 1 < n; i++) umi_link_set(UM_CARVED_AT(i), UM_CARVED_AT(i + 1), secret);
    umi_link_set(UM_CARVED_AT(n - 1), hot->free, secret); /* after any freed ones: cold */
    hot->free = UM_CARVED_AT(0);
#endif
#undef UM_CARVED_AT
    UM_SHARED_WRITE(page->capacity, page->capacity + (uint32_t)n);
    umi_count_carved(n * bsize);
    umi_pages_touched_add((int64_t)n, bsize);
}

/* An empty page's free list holds its blocks in the order they were freed, which after a
 * program drops a whole structure is often no order at all (a sorted copy of a list freed last,
 * a hash table's). Forget the list: the page is then as if new, carved again from its start
 * when it is next needed, so its blocks go out in address order. Done where the slow path's
 * walk or the sweep finds such a page, for the programs that build and drop such structures
 * round after round (an interpreter's objects, a tree built and torn down): each round's new
 * structure then lies in address order again. A block's free mark (um_block_t.key) stays
 * until it is handed out again, so a double free of it is still caught meanwhile. */
void umi_page_forget_free_list(um_page_t *page) {
    umi_page_hot(page)->free = NULL;
    umi_count_uncarved((size_t)page->capacity * page->block_size);
    umi_pages_touched_add(-(int64_t)page->capacity, page->block_size);
    if (page->capacity > page->recarve) page->recarve = page->capacity;
    UM_SHARED_WRITE(page->capacity, 0);
}

/* Move the blocks other threads freed onto the free list: one CAS, and no walk when the free
 * list is empty, as it is when a refill comes here for the bin's first page (the list's length
 * is in the word, see UM_TF_COUNT). */
void umi_page_collect(um_heap_t *heap, um_page_t *page) {
    uintptr_t tf = atomic_load_explicit(&page->thread_free, UM_RELAXED);
    if ((tf & ~UM_TF_STATE) == 0) return;
    /* Take the whole remote list at once, keeping the delay state bits. */
    while (!atomic_compare_exchange_weak_explicit(&page->thread_free, &tf, tf & UM_TF_STATE, memory_order_acquire, UM_RELAXED)) {}
    um_block_t *list = UM_TF_LIST(tf);
    size_t count = UM_TF_COUNT(tf);
    UM_CHECK(list != NULL && count != 0 && count <= page->capacity);
    um_page_hot_t *hot = umi_page_hot(page);
    if (hot->free != NULL) {
        um_block_t *tail = list, *next;
        while ((next = umi_link_next(tail, hot)) != NULL) tail = next;
        umi_link_set(tail, hot->free, UM_HOT_SECRET(hot));
    }
    hot->free = list;
    UM_OWNER_ADD(hot->frees, count);
    UM_COUNT_ADD(heap->stats.remote_frees, count);
}

/* ---- bin queues ------------------------------------------------------------------------ */
void umi_heap_set_bin_first(um_heap_t *heap, size_t bin, um_page_t *page);

void umi_page_queue_push(um_heap_t *heap, um_page_t *page) {
    um_page_queue_t *q = &heap->queues[page->bin];
    page->prev = NULL;
    page->next = q->first;
    if (q->first) q->first->prev = page;
    else q->last = page;
    q->first = page;
    umi_heap_set_bin_first(heap, page->bin, page);
}

/* An adopted page (core/abandon.c) joins the queue: first if it has a block to give, so that
 * the next malloc of its class reuses it; last otherwise, where the refill walk finds it and
 * moves it to "full" as it would any page of ours. */
void umi_page_queue_adopt(um_heap_t *heap, um_page_t *page) {
    um_page_queue_t *q = &heap->queues[page->bin];
    if (q->first == NULL || umi_page_hot(page)->free != NULL || page->capacity < page->reserved) {
        umi_page_queue_push(heap, page);
        return;
    }
    page->next = NULL;
    page->prev = q->last;
    q->last->next = page;
    q->last = page;
}

void umi_page_queue_remove(um_heap_t *heap, um_page_t *page) {
    um_page_queue_t *q = &heap->queues[page->bin];
    if (page->prev) page->prev->next = page->next;
    else {
        q->first = page->next;
        umi_heap_set_bin_first(heap, page->bin, q->first);
    }
    if (page->next) page->next->prev = page->prev;
    else q->last = page->prev;
    page->next = page->prev = NULL;
}

/* ---- full pages and the delayed-free wake-up ------------------------------------------- */
/* A full page goes back in its queue only with a batch of free blocks, not at its first free. A
 * program that keeps a steady number of blocks of a size and frees them in random order (a cache,
 * a hash table, a server's connections) keeps its pages all but full: put back at the first
 * free, each page served one malloc and filled up again, so every malloc walked the queue and
 * moved a page (rewriting up to 128 direct[] slots) and every free took a page out of "full".
 * The batch: 4 KiB of blocks, but at least 8 (the switch, a few hundred instructions, is then
 * spread over 8 mallocs or more) and at most an eighth of the page, plus one. Larger batches
 * leave more free blocks waiting in full pages, and those are cold by the time they are reused:
 * a larger working set in cache, for no fewer instructions. Remote frees still wake the owner
 * at their first block (umi_heap_collect_delayed): after that no wake-up would come. */
#define UM_REQUEUE_BYTES 4096
#define UM_REQUEUE_BLOCKS_MIN 8
static inline uint32_t page_requeue_min(const um_page_t *page) {
    uint32_t batch = UM_REQUEUE_BYTES / page->block_size, most = page->reserved / 8 + 1;
    if (batch < UM_REQUEUE_BLOCKS_MIN) batch = UM_REQUEUE_BLOCKS_MIN;
    return batch < most ? batch : most;
}

/* A page with no free block leaves its queue, so a heap with many full pages doesn't walk them
 * on every refill. Its first remote free then must tell the owner: it goes on the heap's
 * delayed_free list instead of the page's, and the owner's next slow path puts the page back.
 * Returns false if a remote free raced in (then the page is not full after all). */
static bool page_to_full(um_heap_t *heap, um_page_t *page) {
    uintptr_t tf = atomic_load_explicit(&page->thread_free, UM_RELAXED);
    for (;;) {
        if ((tf & ~UM_TF_STATE) != 0) return false;
        if ((tf & UM_TF_STATE) == UM_DELAY_USE) break;
        if ((tf & UM_TF_STATE) == UM_DELAY_FREEING) {
            /* A remote free is waking us for an earlier stay in "full". When it is done it
             * resets the state to NORMAL, which would leave this stay without a wake-up: wait
             * for it, then ask for USE like any page that fills up. */
            sched_yield();
            tf = atomic_load_explicit(&page->thread_free, UM_RELAXED);
            continue;
        }
        if (atomic_compare_exchange_weak_explicit(&page->thread_free, &tf, (tf & ~UM_TF_STATE) | UM_DELAY_USE, memory_order_release, UM_RELAXED)) break;
    }
    umi_page_queue_remove(heap, page);
    umi_page_hot(page)->requeue_used = page->reserved - page_requeue_min(page);
    atomic_fetch_or_explicit(&UM_PAGE_OWNER(page), UM_PAGE_IN_FULL, UM_RELAXED);
    return true;
}

/* Back second in the queue, right behind the first page:
 *  - Not first: the bin's first page keeps serving (its free list is warm), and the
 *    size-indexed direct table, up to 128 slots a bin, is only rewritten when the queue was
 *    empty. Pushed to the front, every full page that gets a block back would rewrite them,
 *    again and again in a program that churns blocks of one size.
 *  - Not last: the block just freed is the most recently used one of its class, and the next
 *    refill's walk should find it before the older frees of pages further back. At the tail,
 *    the walk would more often hand out blocks freed thousands of allocations earlier, cold
 *    in cache. */
void umi_page_unfull(um_heap_t *heap, um_page_t *page) {
    atomic_fetch_and_explicit(&UM_PAGE_OWNER(page), ~UM_PAGE_IN_FULL, UM_RELAXED);
    umi_page_hot(page)->requeue_used = 0;
    um_page_queue_t *q = &heap->queues[page->bin];
    um_page_t *first = q->first;
    if (first == NULL) { umi_page_queue_push(heap, page); return; }
    page->prev = first;
    page->next = first->next;
    if (first->next) first->next->prev = page;
    else q->last = page;
    first->next = page;
}

/* Set the delay state to NEVER, waiting out a remote thread in the middle of a delayed free.
 * After this no remote free will touch the owning heap. */
void umi_page_set_never_delayed(um_page_t *page) {
    uintptr_t tf = atomic_load_explicit(&page->thread_free, UM_RELAXED);
    for (;;) {
        if ((tf & UM_TF_STATE) == UM_DELAY_FREEING) {
            sched_yield();
            tf = atomic_load_explicit(&page->thread_free, UM_RELAXED);
            continue;
        }
        if (atomic_compare_exchange_weak_explicit(&page->thread_free, &tf, (tf & ~UM_TF_STATE) | UM_DELAY_NEVER, memory_order_acq_rel, UM_RELAXED))
            return;
    }
}

void umi_page_remote_free(um_page_t *page, um_block_t *b) {
    uintptr_t key = umi_block_key(b);
    if (UM_UNLIKELY(umi_key_get(b) == key)) { umi_double_free(b); return; }
    UM_SAN_POISON(b, page->block_size);
    umi_key_set(b, key);
    uintptr_t secret = UM_PAGE_SECRET(page);
    UM_CHECK((uintptr_t)b < UM_TF_COUNT_ONE);
    uintptr_t tf = atomic_load_explicit(&page->thread_free, UM_RELAXED), next;
    do {
        if ((tf & UM_TF_STATE) == UM_DELAY_USE) {
            next = (tf & ~UM_TF_STATE) | UM_DELAY_FREEING;
        } else {
            umi_link_set(b, UM_TF_LIST(tf), secret);
            next = (tf + UM_TF_COUNT_ONE) & ~(UM_TF_COUNT_ONE - 1); /* one more in the list, */
            next |= (uintptr_t)b | (tf & UM_TF_STATE);              /* b at its head */
        }
    } while (!atomic_compare_exchange_weak_explicit(&page->thread_free, &tf, next, memory_order_release, UM_RELAXED));
    if ((tf & UM_TF_STATE) != UM_DELAY_USE) return;

    /* We are the first to free into this full page: wake the owner. It cannot go away while the
     * state is FREEING (abandoning waits for it), so reading its heap is safe. */
    um_heap_t *heap = atomic_load_explicit(&page->heap, UM_RELAXED);
    UM_CHECK(heap != NULL);
    UM_TEST_HOOK(UM_HOOK_REMOTE_FREEING, page);
    um_block_t *head = atomic_load_explicit(&heap->delayed_free, UM_RELAXED);
    do { umi_link_set(b, head, secret); } while (!atomic_compare_exchange_weak_explicit(&heap->delayed_free, &head, b, memory_order_release, UM_RELAXED));
    /* The owner may take b back at once, empty the page and retire it: the page slot stays in
     * use until we are done here, because retiring waits for FREEING to clear
     * (umi_segment_page_free). */
    UM_TEST_HOOK(UM_HOOK_REMOTE_PUSHED, page);
    tf = atomic_load_explicit(&page->thread_free, UM_RELAXED);
    while (!atomic_compare_exchange_weak_explicit(&page->thread_free, &tf, (tf & ~UM_TF_STATE) | UM_DELAY_NORMAL, memory_order_release, UM_RELAXED)) {}
}

/* The owner frees into a page that is full, has aligned blocks, or just became empty. */
void umi_page_local_free_slow(um_heap_t *heap, um_page_t *page, um_block_t *b) {
    if (UM_UNLIKELY(umi_key_get(b) == umi_block_key(b))) { umi_double_free(b); return; }
    UM_SAN_POISON(b, page->block_size);
    um_page_hot_t *hot = umi_page_hot(page);
    umi_hot_push(hot, b);
    if (atomic_load_explicit(&hot->owner, UM_RELAXED) & UM_PAGE_IN_FULL) {
        if (umi_hot_used(hot) > hot->requeue_used) return;
        umi_page_unfull(heap, page);
    }
    if (umi_hot_used(hot) == 0) umi_page_retire(heap, page);
}

/* Abandoned segments one slow path adopts for a size class the heap has no page of: one, the
 * newest. An exited thread's segment holds pages of most classes it used, so one usually
 * serves many classes of the next thread; adopting more per class would have short-lived
 * threads hoard segments that the threads running beside them then have to map afresh (a
 * program that runs many short-lived threads at a time). */
#define UM_ADOPT_BUDGET 1

/* ---- NUMA: a heap that changed node ----------------------------------------------------- */
static void page_rehome(um_heap_t *heap) {
    for (size_t bin = 1; bin < UM_BIN_COUNT; bin++) {
        um_page_t *next;
        for (um_page_t *page = heap->queues[bin].first; page != NULL; page = next) {
            next = page->next;
            if (umi_segment_of(page)->node == heap->numa_node) continue;
            for (;;) {
                umi_page_collect(heap, page);
                if (umi_hot_used(umi_page_hot(page)) == 0) {
                    umi_page_queue_remove(heap, page);
                    umi_segment_page_free(heap, page);
                    break;
                }
                if (page_to_full(heap, page)) break; /* else a remote free came in: collect again */
            }
        }
    }
}

void umi_heap_numa_check(um_heap_t *heap) {
    int key = umi_numa_key();
    if (UM_LIKELY(key == heap->numa_node)) return;
    bool placed = heap->numa_node != UMI_NUMA_UNSET;
    heap->numa_node = (int16_t)key;
    if (placed) page_rehome(heap);
}

/* ---- refill ---------------------------------------------------------------------------- */
/* A bin with no page of its own yet: a block from the first page of a slightly larger bin
 * (umi_bin_may_lend), if that page has one free or uncarved; the bin's mallocs then take that
 * page's blocks until it stops being its bin's first (see umi_heap_set_bin_first). Why: a page
 * per size class costs a program at least an OS page a class it uses, a page fault each. A short
 * process (a shell command) uses a few blocks of each of dozens of classes, and with 8 classes
 * a doubling each class's first blocks would lie alone in an OS page; borrowed, neighbouring
 * classes share one. A bin borrows at most UM_BORROW_MAX times and never once it has had a page
 * of its own: a class in real use soon opens one, and from then on its blocks are its own size,
 * so only its first blocks are larger, and a busy class does not stay in its lender's pages
 * for good (docs/bench-notes.md). NULL: nothing to borrow. */
static void *page_borrow(um_heap_t *heap, size_t bin) {
    if (heap->borrows[bin] >= UM_BORROW_MAX || heap->is_backup) return NULL; /* backup: aligned mallocs */
    for (size_t l = bin + 1; umi_bin_may_lend(bin, l); l++) {
        um_page_t *lender = heap->queues[l].first;
        if (lender == NULL) continue;
        umi_page_collect(heap, lender);
        um_page_hot_t *hot = umi_page_hot(lender);
        if (hot->free == NULL && lender->capacity < lender->reserved) page_extend(heap, lender);
        if (hot->free == NULL) continue;
        umi_heap_lend(heap, bin, lender);
        heap->borrows[bin]++;
        return umi_hot_pop(hot, hot->free);
    }
    return NULL;
}

/* Retire the pages free() emptied and purge the slots that stayed free past the delay, when
 * due (see umi_page_sweep), or all of it when um_trim asked (a new purge epoch). */
static void heap_tend(um_heap_t *heap, bool sweep_due) {
    unsigned epoch = atomic_load_explicit(&umi_purge_epoch, UM_RELAXED);
    if (UM_UNLIKELY(epoch != heap->purge_epoch)) {
        heap->purge_epoch = epoch;
        umi_page_sweep(heap, true);
        umi_segment_purge(heap, UM_PURGE_ALL);
        return;
    }
    if (sweep_due) umi_page_sweep(heap, false);
    if (heap->dirty_pages > 0) umi_segment_purge(heap, UM_PURGE_AGED);
}

/* The small slow path is not the only place a heap grows: a program that drops a structure of
 * small blocks and goes on with big ones takes it no more, and the pages it emptied would stay
 * resident while the big blocks map memory beside them. So the big blocks' paths tend the
 * calling thread's heap too, where they are about to map memory: the empty pages are retired
 * at once, as for a new page (their segments, emptied, may serve the big blocks), and what
 * stayed free past the delay is purged. */
void umi_heap_tend(void) {
    um_heap_t *heap = umi_tl_heap;
    if (!umi_heap_is_own(heap)) return;
    /* whatever the last walk for a slot found: memory is about to be mapped, and a page that
     * free()'s fast path emptied a moment ago is found only by a walk */
    heap->slot_sweep_wait = 0;
    umi_page_sweep_for_slot(heap);
    heap_tend(heap, true);
}

/* An emptied page's free list runs through its blocks in address order, one way or the other
 * (they were freed in the order they went out, or the reverse: a batch of blocks built and then
 * dropped), judged by its first three blocks, which the frees left in cache. Such a list
 * serves the next blocks as locally as carving the page again would, without writing a link
 * into every block, each a cache miss in a program that fills and empties pages of a size
 * round after round (glibc's bench-malloc-simple). */
static bool free_list_in_order(const um_page_t *page, um_page_hot_t *hot) {
    um_block_t *a = hot->free, *b = umi_link_next(a, hot);
    if (b == NULL) return true;
    intptr_t step = (intptr_t)b - (intptr_t)a;
    if (step != (intptr_t)page->block_size && step != -(intptr_t)page->block_size) return false;
    um_block_t *c = umi_link_next(b, hot);
    return c == NULL || (intptr_t)c - (intptr_t)b == step;
}

/* The bin's first page ran dry: collect remote frees into it, try the other pages of the bin
 * (moving full ones out of the queue), else carve, else start a fresh page. */
void *umi_page_alloc_slow(um_heap_t *heap, size_t bin) {
    if (UM_UNLIKELY(umi_numa_on) && !heap->is_backup) umi_heap_numa_check(heap);
    if (atomic_load_explicit(&heap->delayed_free, UM_RELAXED) != NULL) umi_heap_collect_delayed(heap);
    /* the clock is read on one slow path in 32 only: the sweep's pace needs no more */
    heap_tend(heap, (++heap->slow_calls & 31) == 0);

    um_page_queue_t *q = &heap->queues[bin];
    bool adopted = false, bin_was_empty = q->first == NULL;
walk:;
    um_page_t *page = q->first, *carvable = NULL, *emptied = NULL;
    /* Freed blocks anywhere in the queue go before carving new ones (which touches fresh
     * memory), and a page with freed blocks may lie behind one that can still be carved: that
     * one is only remembered while the walk goes on. Each full page leaves the queue as it is
     * passed, so the walk is paid for once per page that fills up, not once per refill; a bin
     * has one page being carved, at most a few. */
    while (page != NULL) {
        um_page_t *next = page->next;
        umi_page_collect(heap, page);
        um_page_hot_t *hot = umi_page_hot(page);
        if (hot->free != NULL && umi_hot_used(hot) != 0) break;
        /* A page all of whose blocks are free counts as a new one: taken only if no page in use
         * has freed blocks, and only the first such, so that a queue of emptied pages is not
         * handed out a few blocks each (which would keep them all resident, where the sweep
         * retires those left idle). Its blocks go out in address order: a free list in no
         * order is dropped and the page carved again, one that runs through the blocks in order
         * already is taken as it stands (see free_list_in_order). */
        if (hot->free != NULL) {
            if (free_list_in_order(page, hot)) {
                if (emptied == NULL) emptied = page;
                page = next;
                continue;
            }
            umi_page_forget_free_list(page); /* carvable below, from its start */
        }
        if (page->capacity < page->reserved) {
            if (carvable == NULL) carvable = page;
            page = next;
            continue;
        }
        if (!page_to_full(heap, page)) continue; /* a remote free just came in: collect again */
        page = next;
    }
    /* No freed block in the bin: blocks that exited threads left (and whatever was freed into
     * their pages since) go before carving new ones. */
    if (page == NULL && bin_was_empty && !adopted && !heap->is_backup && atomic_load_explicit(&umi_abandoned_count, UM_RELAXED) != 0) {
        adopted = true;
        if (umi_segment_adopt(heap, bin, UM_KIND_COUNT, UM_ADOPT_BUDGET) != 0) goto walk;
    }
    if (page == NULL) page = emptied; /* its blocks are resident; a carvable page's may not be */
    if (page == NULL && carvable != NULL) {
        page = carvable;
        page_extend(heap, page);
    }
    if (page != NULL && page != q->first) { /* move it to the front: the fast path looks there */
        umi_page_queue_remove(heap, page);
        umi_page_queue_push(heap, page);
    }
    if (page == NULL) {
        void *borrowed = page_borrow(heap, bin);
        if (borrowed != NULL) { umi_safe_point(); return borrowed; }
        page = umi_segment_page_alloc(heap, bin);
        if (page == NULL) { errno = ENOMEM; umi_count_failed(); return NULL; }
        heap->borrows[bin] = UM_BORROW_MAX;
        umi_page_init(heap, page, bin);
        page_extend(heap, page);
        umi_page_queue_push(heap, page);
    }
    um_page_hot_t *hot = umi_page_hot(page);
    void *block = umi_hot_pop(hot, hot->free);
    /* Statistics work asked for meanwhile (a peak sample the carving above may have asked for, a
     * deferred dump) runs here: the heap is consistent, and no lock is held but, for the backup
     * heap, its own (then it runs after, umi_heap_malloc_backup). */
    umi_safe_point();
    return block;
}

/* For a pointer into a page with aligned blocks: the start of the block holding it. */
void *umi_block_start(um_segment_t *seg, um_page_t *page, const void *p) {
    size_t off = (size_t)((const uint8_t *)p - page->start);
    if ((const uint8_t *)p < page->start || off >= (size_t)page->reserved * page->block_size) return NULL;
    /* realloc and malloc_usable_size come here with a block's start nearly always: that is told
     * without the 64-bit divide (um_page_t.block_div) */
    if ((uint64_t)(uint32_t)off * page->block_div <= page->block_div - 1) return (void *)p;
    return page->start + off - off % page->block_size;
}
