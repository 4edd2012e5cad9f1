/* The huge-block cache: freed huge mappings kept resident for a while, as *pieces* of address
 * space that the next huge allocation can use whatever its size.
 *
 * Why pieces and not whole blocks: a fresh huge block costs the kernel a zeroed page per page
 * the program writes (one 2 MiB clear per THP fault), and that dominates a program that
 * cycles big buffers of varying sizes. A cache that only reuses a block for a request of about
 * the same size misses most of the time. Here a request is served, in order:
 *   1. in place, from the front of any piece of the size or more (what is left stays cached),
 *      with no system call;
 *   2. else, for a block realloc will grow, by *growing* the largest resident piece with
 *      mremap, in place or moved to an aligned place: mremap moves page-table entries, never
 *      bytes, so the block gets resident memory that costs no fault and no clearing;
 *   2'. else, for malloc, by *assembly*: a fresh mapping into which mremap moves as many
 *      resident pieces as it takes to cover it, each to an offset it keeps within 2 MiB;
 *   3. else (nothing resident cached) the caller maps fresh memory.
 * Pieces are purged (MADV_DONTNEED) after UMALLOC_PURGE_DELAY_MS and unmapped UM_RETAIN_MS later,
 * or earlier when the cache is over its byte or count limit (oldest first).
 *
 * The cache is a small array under umi_cache_lock; system calls run outside the lock, on pieces
 * taken out of the array first (so no other thread can use them meanwhile). */
#include <sys/mman.h>

#include "core/internal.h"
#include "hugepages/pagesize.h"
#include "os/os.h"
#include "numa/arena.h"
#include "core/counters.h"

/* Leftovers of every size are kept: a small one merges with its neighbours when the block
 * beside it comes back (piece_add), and unmapped it would split the kernel mapping, and cost
 * its pages' faults again. */
#define UM_HUGE_PIECES 128
/* Resident until purged (UMALLOC_PURGE_DELAY_MS), so it only adds to a peak for that long.
 * Sized so that a program cycling through blocks of tens of MiB, from more than one thread,
 * finds most of them resident: every byte not reused is a fault that clears it again. */
#define UM_HUGE_CACHE_BYTES ((size_t)256 << 20)

typedef struct huge_piece_s {
    uint8_t *base;         /* page-aligned start */
    size_t size;           /* bytes, a multiple of the OS page */
    uint64_t cached_at_ms; /* when it was freed, for the purge delay and the retain time */
    int16_t node;          /* NUMA node it is bound to (-1: none), for the statistics */
    uint8_t page_kind;     /* UM_PAGES_*: what backs it, for the statistics */
    uint8_t purged;        /* purged since it was freed: reads as zero, nothing resident to move */
    uint8_t multi_vma;     /* may span several kernel mappings: mremap can't grow or move it */
    uint8_t after_block;   /* cut from behind a block that is live: that block may grow into it */
} huge_piece_t;

UM_BIG_BSS static huge_piece_t pieces[UM_HUGE_PIECES]; /* unordered; guarded by umi_cache_lock */
static size_t piece_count;
static _Atomic size_t piece_hint; /* piece_count, readable without the lock */
_Atomic size_t umi_huge_cached_bytes;

static void piece_unmap(const huge_piece_t *p) {
    umi_count_mapped_bytes(p->node, p->page_kind, p->size, -1);
    umi_arena_unmap(p->base, p->size);
}

/* Array edits, all under the lock. */
static void piece_remove(size_t i) {
    atomic_fetch_sub_explicit(&umi_huge_cached_bytes, pieces[i].size, UM_RELAXED);
    pieces[i] = pieces[--piece_count];
    atomic_store_explicit(&piece_hint, piece_count, UM_RELAXED);
}
/* A piece is merged with the cached pieces right before and after it (same node, backing and
 * purge state): a block cut from a piece's front and freed again makes the whole piece again,
 * for the next block of that size. Without it, a program whose buffers come back in other
 * sizes every round (vectors rebuilt, messages of varying length) would find only the pieces
 * earlier blocks cut, each too small, and map fresh memory, a fault per page, while as much
 * memory sat resident in the cache. The result may span several kernel mappings. */
static bool piece_add(const huge_piece_t *p) {
    huge_piece_t m = *p;
    for (size_t i = 0; i < piece_count;) {
        const huge_piece_t *q = &pieces[i];
        bool before = q->base + q->size == m.base, after = m.base + m.size == q->base;
        if (!(before || after) || q->node != m.node || q->page_kind != m.page_kind || q->purged != m.purged) { i++; continue; }
        if (before) { m.base = q->base; m.after_block = q->after_block; }
        m.size += q->size;
        if (q->cached_at_ms > m.cached_at_ms) m.cached_at_ms = q->cached_at_ms; /* in use until then */
        m.multi_vma = 1;
        piece_remove(i); /* the last piece moves to i: look at i again */
    }
    if (piece_count == UM_HUGE_PIECES) return false;
    pieces[piece_count++] = m;
    atomic_store_explicit(&piece_hint, piece_count, UM_RELAXED);
    atomic_fetch_add_explicit(&umi_huge_cached_bytes, m.size, UM_RELAXED);
    return true;
}
static size_t piece_oldest(void) {
    size_t o = 0;
    for (size_t i = 1; i < piece_count; i++)
        if (pieces[i].cached_at_ms < pieces[o].cached_at_ms) o = i;
    return o;
}

/* Put a leftover [base, base + size) of piece `from` back (or unmap it if there is no room).
 * Takes the lock itself. */
static void leftover_put(const huge_piece_t *from, uint8_t *base, size_t size) {
    if (size == 0) return;
    huge_piece_t p = *from;
    p.base = base;
    p.size = size;
    umi_lock(&umi_cache_lock);
    bool ok = piece_add(&p);
    umi_unlock(&umi_cache_lock);
    if (!ok) piece_unmap(&p);
}

bool umi_huge_cache_put(void *base, size_t size, int node, unsigned page_kind, bool multi_vma) {
    if (size > UM_HUGE_CACHE_BYTES / 2) return false; /* one block would flush everything else */
    /* Hugetlb pages go back to their pool at once: pieces are cut and purged at 4 KiB
     * boundaries, which would split them. */
    if (UM_PAGES_KIND(page_kind) >= UM_PAGES_2M) return false;
    huge_piece_t p = {.base = base, .size = size, .cached_at_ms = umi_os_now_ms(), .node = (int16_t)node,
                      .page_kind = (uint8_t)page_kind, .purged = 0, .multi_vma = multi_vma};
    huge_piece_t evict[4];
    size_t nevict = 0;
    umi_lock(&umi_cache_lock);
    while (piece_count > 0 && nevict < 4 &&
           (piece_count == UM_HUGE_PIECES ||
            atomic_load_explicit(&umi_huge_cached_bytes, UM_RELAXED) + size > UM_HUGE_CACHE_BYTES)) {
        size_t o = piece_oldest();
        evict[nevict++] = pieces[o];
        piece_remove(o);
    }
    bool ok = piece_count < UM_HUGE_PIECES && atomic_load_explicit(&umi_huge_cached_bytes, UM_RELAXED) + size <= UM_HUGE_CACHE_BYTES;
    if (ok) piece_add(&p);
    umi_unlock(&umi_cache_lock);
    for (size_t i = 0; i < nevict; i++) piece_unmap(&evict[i]);
    return ok;
}

/* Whether piece p, on `node`, holds `size` bytes. Under the lock. */
static bool piece_holds(const huge_piece_t *p, size_t size, int node) {
    return p->node == node && p->size >= size;
}

/* Take the first `size` bytes of piece i for a block: what is left stays cached where it is,
 * now behind that block. Returns the piece as it was. Under the lock. */
static huge_piece_t piece_take_front(size_t i, size_t size) {
    huge_piece_t got = pieces[i];
    if (pieces[i].size == size) {
        piece_remove(i);
    } else {
        pieces[i].base += size;
        pieces[i].size -= size;
        pieces[i].after_block = 1;
        atomic_fetch_sub_explicit(&umi_huge_cached_bytes, size, UM_RELAXED);
    }
    return got;
}

/* `bytes` of piece `got` went to a block: the block counts them from now on, and if the delay
 * had purged them, that was too soon (umi_purge_regret). Outside the lock. */
static void piece_taken(const huge_piece_t *got, size_t bytes) {
    umi_count_mapped_bytes(got->node, got->page_kind, bytes, -1);
    if (got->purged) {
        uint64_t now = umi_os_now_ms();
        umi_purge_regret(now - got->cached_at_ms, now, bytes);
    }
}

/* 1. In place: of the pieces that hold `size` bytes, a resident one first (a purged one faults
 * in every page again); for a block that will grow, one that no live block may grow into
 * next; of those the one that wastes least. The block takes the piece's front: what is left
 * stays right after it, for it to grow into (umi_huge_cache_take_after). Why the growing
 * blocks keep out of each other's way: buffers growing side by side (vectors built in turn)
 * each took the rest of the piece the one before had been cut from, the smallest fit; the one
 * before could then not grow in place any more and was copied, and every copy left its old
 * block resident in the cache until the purge delay. */
static bool take_in_place(size_t size, int node, bool growable, um_huge_take_t *out) {
    huge_piece_t got;
    size_t best = SIZE_MAX, bi = 0;
    unsigned best_rank = 0;
    umi_lock(&umi_cache_lock);
    for (size_t i = 0; i < piece_count; i++) {
        const huge_piece_t *p = &pieces[i];
        if (!piece_holds(p, size, node)) continue;
        unsigned rank = 2u * p->purged + (growable && p->after_block);
        if (best == SIZE_MAX || rank < best_rank || (rank == best_rank && p->size < best)) { best = p->size; bi = i; best_rank = rank; }
    }
    if (best == SIZE_MAX) { umi_unlock(&umi_cache_lock); return false; }
    got = piece_take_front(bi, size);
    umi_unlock(&umi_cache_lock);
    piece_taken(&got, size);
    out->base = got.base;
    out->is_zero = got.purged;
    out->page_kind = got.page_kind;
    out->multi_vma = got.multi_vma;
    return true;
}

/* The largest resident (not purged) piece on `node` smaller than `below` (and one kernel
 * mapping if one_vma), or SIZE_MAX. Under the lock. */
static size_t piece_largest_resident(int node, size_t below, bool one_vma) {
    size_t bi = SIZE_MAX;
    for (size_t i = 0; i < piece_count; i++)
        if (!pieces[i].purged && pieces[i].node == node && pieces[i].size < below && !(one_vma && pieces[i].multi_vma) &&
            (bi == SIZE_MAX || pieces[i].size > pieces[bi].size))
            bi = i;
    return bi;
}

/* 2. Growth: the largest resident piece, grown to the size by mremap (in place when it is
 * aligned and the address space after it is free, else moved by its page tables to a fresh
 * aligned place). Only one piece: a mapping made of several moved pieces would be several
 * kernel VMAs, and mremap, which grows and moves a huge block in realloc, works on one. */
static bool take_grown(size_t size, int node, um_huge_take_t *out) {
    huge_piece_t got;
    umi_lock(&umi_cache_lock);
    size_t bi = piece_largest_resident(node, size, true);
    if (bi == SIZE_MAX) { umi_unlock(&umi_cache_lock); return false; }
    got = pieces[bi];
    piece_remove(bi);
    umi_unlock(&umi_cache_lock);

    uint8_t *at = umi_os_grow_aligned(got.base, got.size, size, UM_SEGMENT_SIZE);
    /* Refused: most likely a piece cut from an assembled block, which spans two kernel
     * mappings and so can never be grown or moved. Kept, it would be picked and refused again
     * on every such allocation. */
    if (at == NULL) { piece_unmap(&got); return false; }
    umi_count_mapped_bytes(got.node, got.page_kind, got.size, -1); /* the caller counts the block */
    out->base = at;
    out->is_zero = 0;
    out->page_kind = (uint8_t)umi_pages_for_huge_block(at, size, got.page_kind);
    return true;
}

/* Whether bytes at `from` moved to offset `off` of a fresh mapping (which starts on a 2 MiB
 * boundary: UM_SEGMENT_SIZE-aligned) keep their offset within 2 MiB. */
static bool lands_congruent(const uint8_t *from, size_t off) { return (((uintptr_t)from - off) & (UM_THP_BYTES - 1)) == 0; }

/* The resident piece on `node` to move to offset `off` of the block next, for the `want` bytes
 * still uncovered: the largest whose bytes land there at their own offset within 2 MiB, taken
 * from its end (its start stays for the block before it to grow into) or else from its front.
 * *from gets where the bytes start. SIZE_MAX: none. Under the lock.
 * Why only those: mremap moves the page tables of 2 MiB spans whole when source and target
 * agree modulo 2 MiB, and otherwise entry by entry, and under a hypervisor that traps the
 * guest's page-table changes (shadow paging, nested guests: the VM umalloc is measured on) a
 * page moved entry by entry costs about half a fresh fault at its next touch
 * (docs/bench-notes.md); pieces moved so, cut and moved again, cost a program that cycles
 * buffers of a few MiB more than faulting them in fresh. */
static size_t piece_congruent(int node, size_t off, size_t want, uint8_t **from) {
    size_t bi = SIZE_MAX;
    for (size_t i = 0; i < piece_count; i++) {
        const huge_piece_t *p = &pieces[i];
        if (p->purged || p->node != node || (bi != SIZE_MAX && p->size <= pieces[bi].size)) continue;
        uint8_t *end_cut = p->size <= want ? p->base : p->base + p->size - want;
        if (lands_congruent(end_cut, off)) *from = end_cut;
        else if (lands_congruent(p->base, off)) *from = p->base;
        else continue;
        bi = i;
    }
    return bi;
}

/* 3. Assembly: move resident pieces into a fresh mapping, largest first, each to an offset it
 * keeps within 2 MiB (piece_congruent), until they cover it (what they don't cover is faulted
 * in fresh). The block is then several kernel VMAs, which only matters to mremap: a realloc of
 * it copies once (see umi_huge_realloc). */
static bool take_assembled(size_t size, int node, um_huge_take_t *out) {
    enum { MAX_CHUNKS = 8 };
    huge_piece_t chunk[MAX_CHUNKS];
    size_t nchunks = 0, covered = 0;
    umi_lock(&umi_cache_lock);
    while (covered < size && nchunks < MAX_CHUNKS) {
        size_t want = size - covered;
        uint8_t *from;
        size_t bi = piece_congruent(node, covered, want, &from);
        if (bi == SIZE_MAX) break;
        huge_piece_t *p = &pieces[bi];
        chunk[nchunks] = *p;
        if (p->size <= want) {
            piece_remove(bi);
        } else {
            chunk[nchunks].base = from;
            chunk[nchunks].size = want;
            if (from == p->base) p->base += want;
            p->size -= want;
            atomic_fetch_sub_explicit(&umi_huge_cached_bytes, want, UM_RELAXED);
        }
        covered += chunk[nchunks++].size;
    }
    umi_unlock(&umi_cache_lock);
    if (nchunks == 0) return false;

    int got_node;
    unsigned page_kind;
    uint8_t *dst = umi_arena_map(size, UM_SEGMENT_SIZE, node, UM_USE_BLOCK, &got_node, &page_kind);
    if (dst == NULL || UM_PAGES_KIND(page_kind) >= UM_PAGES_2M) {
        /* A hugetlb mapping takes no small pages moved into it: it stays as it is, fresh. */
        for (size_t i = 0; i < nchunks; i++) leftover_put(&chunk[i], chunk[i].base, chunk[i].size);
        if (dst == NULL) return false;
        out->base = dst;
        out->is_zero = 1;
        out->page_kind = (uint8_t)page_kind;
        return true;
    }
    size_t off = 0;
    for (size_t i = 0; i < nchunks; i++) {
        /* A piece that spans two VMAs (cut from an assembled block) can't move before Linux
         * 6.17, and mremap with MREMAP_FIXED unmaps the target before it finds that out: drop
         * the piece and map fresh memory into the hole it left. */
        if (umi_os_move(chunk[i].base, chunk[i].size, dst + off) != 0) {
            if (umi_arena_map_at(dst + off, chunk[i].size, got_node) == NULL) {
                /* No memory for it: the block can't be made; what is not moved yet goes back. */
                umi_arena_unmap(dst, size);
                for (size_t j = i; j < nchunks; j++) leftover_put(&chunk[j], chunk[j].base, chunk[j].size);
                return false;
            }
            umi_count_mapped_bytes(chunk[i].node, chunk[i].page_kind, chunk[i].size, -1);
            umi_arena_unmap(chunk[i].base, chunk[i].size);
        } else {
            umi_count_mapped_bytes(chunk[i].node, chunk[i].page_kind, chunk[i].size, -1);
        }
        off += chunk[i].size;
    }
    out->base = dst;
    out->is_zero = 0;
    out->page_kind = (uint8_t)page_kind;
    out->multi_vma = nchunks > 1 || chunk[0].size < size; /* one piece that covers it all replaced the fresh mapping */
    return true;
}

/* For a huge block growing in place: the first `size` bytes of the cached piece that starts
 * where the block ends. A block taken from the front of a piece (take_in_place) has the rest
 * of that piece right after it; a vector or list that grows a little at a time then grows into
 * memory that is mapped and, most likely, resident, with no system call and no page fault.
 * Grown with mremap instead, it would move to fresh address space and fault in every page it
 * gains, while the resident piece beside it waited to be purged. Returns the bytes taken (0:
 * none). */
size_t umi_huge_cache_take_after(uint8_t *end, size_t size, int node, unsigned page_kind) {
    if (atomic_load_explicit(&piece_hint, UM_RELAXED) == 0) return 0;
    size_t taken = 0;
    huge_piece_t got;
    umi_lock(&umi_cache_lock);
    for (size_t i = 0; i < piece_count; i++) {
        const huge_piece_t *p = &pieces[i];
        if (p->base != end || p->size < size || p->node != node || p->page_kind != page_kind) continue;
        got = piece_take_front(i, size);
        taken = size;
        break;
    }
    umi_unlock(&umi_cache_lock);
    if (taken != 0) piece_taken(&got, taken);
    return taken;
}

/* Whether a resident piece holds `size` bytes (take_in_place would take one such). A hint:
 * another thread may take it first. */
bool umi_huge_cache_has_resident_fit(size_t size, int node) {
    if (atomic_load_explicit(&piece_hint, UM_RELAXED) == 0) return false;
    bool fit = false;
    umi_lock(&umi_cache_lock);
    for (size_t i = 0; i < piece_count && !fit; i++) fit = !pieces[i].purged && piece_holds(&pieces[i], size, node);
    umi_unlock(&umi_cache_lock);
    return fit;
}

bool umi_huge_cache_take(size_t size, int node, bool one_vma, um_huge_take_t *out) {
    if (atomic_load_explicit(&piece_hint, UM_RELAXED) == 0) return false;
    out->multi_vma = 0;
    if (take_in_place(size, node, one_vma, out)) return true;
    return one_vma ? take_grown(size, node, out) : take_assembled(size, node, out);
}

bool umi_huge_cache_take_fit(size_t size, int node, um_huge_take_t *out) {
    if (atomic_load_explicit(&piece_hint, UM_RELAXED) == 0) return false;
    out->multi_vma = 0;
    return take_in_place(size, node, false, out);
}

/* Purge pieces older than the purge delay, unmap those older than the retain time. */
void umi_huge_cache_trim(bool force) {
    if (atomic_load_explicit(&piece_hint, UM_RELAXED) == 0) return;
    uint64_t now = umi_os_now_ms(), delay = umi_purge_delay();
    UM_TEST_HOOK(UM_HOOK_CLOCK_READ, (void *)"huge cache");
    for (;;) {
        huge_piece_t p;
        bool unmap = false, purge = false;
        umi_lock(&umi_cache_lock);
        for (size_t i = 0; i < piece_count; i++) {
            uint64_t age = umi_os_ms_since(pieces[i].cached_at_ms, now);
            unmap = force || age >= UM_RETAIN_MS + delay;
            purge = !unmap && !pieces[i].purged && age >= delay;
            if (purge && !umi_pages_splittable(pieces[i].page_kind)) { unmap = true; purge = false; } /* locked: whole */
            if (unmap || purge) { p = pieces[i]; piece_remove(i); break; }
        }
        umi_unlock(&umi_cache_lock);
        if (unmap) {
            piece_unmap(&p);
        } else if (purge) {
            p.purged = umi_os_purge(p.base, p.size); /* refused: it holds what it held */
            if (p.purged) umi_purge_delay_purged(p.size, now);
            umi_lock(&umi_cache_lock);
            bool ok = piece_add(&p); /* cached_at unchanged: it still expires on time */
            umi_unlock(&umi_cache_lock);
            if (!ok) piece_unmap(&p);
            if (!p.purged) return; /* try again on a later trim, not in a loop */
        } else {
            return;
        }
    }
}
