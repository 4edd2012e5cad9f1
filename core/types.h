/* Every data structure of umalloc's core, in one place, each field commented.
 *
 * Memory comes from the OS in *segments*: 4 MiB regions aligned to 4 MiB, so that the segment of
 * any pointer is `p & ~(4 MiB - 1)`. A segment is cut into equal *pages* (64 KiB small pages,
 * 512 KiB medium pages, or one large page), and every page holds blocks of one size class. The
 * segment header holds the page descriptors, so pointer -> page is a mask, a shift and an index:
 * O(1), no lock, no search. The words malloc and free() touch (free list, counts, owner) are
 * kept in the page itself, at its end (um_page_hot_t). Small segments are carved from one
 * reserved 1 TiB region (os/region.c), so that free() recognises a small block with one
 * compare and reaches its page's hot words with one mask. Blocks from 20 KiB and below
 * LARGE_THRESHOLD are runs of OS pages in *extent* segments, which no thread owns: arenas that
 * all threads share hand them out (core/extent.c), and the segment header maps the pages
 * instead of describing pages of blocks; a thread keeps a few freed ones of up to 64 KiB for
 * its next mallocs (core/extent_cache.c). Blocks of LARGE_THRESHOLD and more get
 * memory of their own (a "huge" segment with one page and one block): a mapping, or a piece of
 * a freed one (core/huge_cache.c). Their header is the OS page before the block, wherever that
 * lies, not at the mask: the huge index finds it (core/segmap.c).
 *
 * Each thread owns a *heap*: per size class, a queue of pages it allocates from. Only the owner
 * touches a page's `free` list (no lock, no atomic); other threads push the
 * blocks they free onto the page's `thread_free` list with a CAS. Segments are owned by one heap;
 * when the thread exits, the segments that still hold live blocks are *abandoned*, and living
 * threads adopt them (core/abandon.c).
 */
#ifndef UM_TYPES_H
#define UM_TYPES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h" /* UM_SECURE */
#include "base/lock.h"

/* ---- geometry --------------------------------------------------------------------------- */
#define UM_SEGMENT_SHIFT 22
#define UM_SEGMENT_SIZE ((size_t)1 << UM_SEGMENT_SHIFT) /* 4 MiB: two 2 MiB huge pages */
#define UM_SEGMENT_MASK (UM_SEGMENT_SIZE - 1)
#define UM_SMALL_PAGE_SHIFT 16  /* 64 KiB pages for blocks up to 4 KiB (>= 15 blocks a page) */
#define UM_SMALL_PAGE_SIZE ((size_t)1 << UM_SMALL_PAGE_SHIFT)
#define UM_MEDIUM_PAGE_SHIFT 19 /* 512 KiB pages for blocks of 4..16 KiB (..64 KiB without extents) */
#define UM_LARGE_PAGE_SHIFT UM_SEGMENT_SHIFT /* one page a segment, blocks up to 512 KiB */
#define UM_PAGES_MAX (UM_SEGMENT_SIZE >> UM_SMALL_PAGE_SHIFT) /* 64 */

/* Small pages stop at 4 KiB. One would hold only 7..12 blocks of 5..8 KiB, and in a program that
 * keeps many of them and replaces them at random (a server's buffers, ptmalloc's t-test1) every
 * such page would be all but full all the time, leaving its bin queue as it fills and coming
 * back after a free or two (page_requeue_min): malloc would take the refill path every block or
 * two. A medium page holds 64..102 of them, and goes back with 8 free. */
#define UM_SMALL_SHIFT 12
#define UM_SMALL_MAX ((size_t)1 << UM_SMALL_SHIFT) /* 4 KiB */
#define UM_MEDIUM_MAX ((size_t)64 << 10)
#define UM_LARGE_MAX ((size_t)512 << 10) /* largest pooled block; above: mapped on its own */

/* Size classes ("bins"): 16-byte steps up to 128, then 8 classes per doubling up to UM_FINE_MAX,
 * then 4 per doubling up to UM_LARGE_MAX. A block wastes at most 1/8 of the request up to 4 KiB
 * and 1/4 above (plus alignment to 16). Why coarser above 4 KiB: a page there holds only 32 to 102
 * blocks (a medium page's 512 KiB holds 102 of 5 KiB), so every class in use keeps a part-empty page
 * or two, and carves a whole block more each time its count of blocks in use reaches a new high.
 * Each class's high is reached on its own, so what the classes keep carved is the sum of their
 * highs, which climbs for long in a program whose blocks of a size come and go in bursts (blocks
 * handed between threads in batches, rptest): with half the classes, half as many climb, each
 * from a larger count whose highs stand less far above its mean. Bin 0 is unused; bin 1 is 16
 * bytes. */
#define UM_FINE_SHIFT 12
#define UM_FINE_MAX ((size_t)1 << UM_FINE_SHIFT) /* 4 KiB: the last class of 8 per doubling */
#define UM_BIN_FINE_LAST 48                      /* bin of UM_FINE_MAX */
#define UM_BIN_COUNT 77                          /* bins 1..76; bin 76 is 512 KiB */
_Static_assert(UM_BIN_FINE_LAST == 8 * (UM_FINE_SHIFT - 6), "8 classes a doubling from 128 B to UM_FINE_MAX");
_Static_assert(UM_BIN_COUNT == UM_BIN_FINE_LAST + 4 * (19 - UM_FINE_SHIFT) + 1, "4 a doubling up to 512 KiB (2^19)");
#define UM_DIRECT_MAX 1024 /* sizes served through heap->direct[], one load from size to page */
#define UM_DIRECT_SLOTS (UM_DIRECT_MAX + 1)

#define UM_HUGE_HEADER 4096 /* a huge block starts one OS page after its segment header */

/* Blocks from 20 KiB (below the large threshold) are runs of OS pages in *extent* segments
 * that all threads share through a few arenas (core/extent.c). Their classes, 20 KiB to
 * 512 KiB, are all whole OS pages; of those below, 10 and 14 KiB are not, and 12 and 16 KiB
 * fill a medium page 32 or more to a page, where a page's high-water mark costs little. Without
 * extents (several NUMA nodes, other OS pages) the classes up to UM_MEDIUM_MAX take medium
 * pages and the others the large kind, a page a segment. */
#define UM_BIN_EXTENT_FIRST 57 /* 20 KiB (umi_bin_of) */
_Static_assert(UM_BIN_EXTENT_FIRST == UM_BIN_FINE_LAST + 4 * (14 - UM_FINE_SHIFT) + 1, "the class above 16 KiB (2^14)");
/* The extent classes a thread caches (core/extent_cache.c): 20 KiB to 64 KiB. */
#define UM_BIN_ECACHE_LAST 64
_Static_assert(UM_BIN_ECACHE_LAST == UM_BIN_FINE_LAST + 4 * (16 - UM_FINE_SHIFT), "the 64 KiB (2^16) class");
#define UM_ECACHE_BINS (UM_BIN_ECACHE_LAST - UM_BIN_EXTENT_FIRST + 1)
#define UM_ECACHE_SLOTS 32 /* at most this many blocks of a class (a grown stack's; core/extent_cache.c) */
#define UM_EXTENT_PAGE_SHIFT 12
#define UM_EXTENT_PAGES (UM_SEGMENT_SIZE >> UM_EXTENT_PAGE_SHIFT) /* 1024 a segment */
#define UM_EXTENT_WORDS (UM_EXTENT_PAGES / 64)
#define UM_EXTENT_ARENAS_MAX 16
#define UM_EXTENT_QUICK_SLOTS 8                    /* an arena's quick list: at most this many blocks */
#define UM_EXTENT_QUICK_BYTES ((size_t)1 << 20)    /* and this many bytes */
/* The secure build ends every segment and every huge block's mapping with an inaccessible
 * (PROT_NONE) page, so that an overflow off the end faults instead of running into the next
 * mapping. A small segment gives up its last page slot for it (the hot words of a small page
 * are at its end), a medium or large one its last page's last 4 KiB. */
#if UM_SECURE
#define UM_GUARD_SIZE ((size_t)4096)
#else
#define UM_GUARD_SIZE ((size_t)0)
#endif

/* The small-page region: every SMALL segment lies in one 2^40-byte range aligned to 2^40
 * (os/region.c), so "is p in a small page?" is `p >> 40 == region number`. */
#define UM_REGION_SHIFT 40

/* ---- blocks --------------------------------------------------------------------------- */
/* A free block. `key` marks it free: malloc clears it, free sets it, so a second free of the
 * same block finds the mark and is reported instead of corrupting the list (glibc's tcache does
 * the same). The mark is a constant that fits a sign-extended 32-bit immediate, so checking and
 * setting it costs no load; it is no pointer, no small integer, no ASCII, no float a program
 * is likely to store at offset 8 of a block it frees. (A wrong match only leaks the block.) */
#define UM_FREE_MARK ((uintptr_t)(intptr_t)(int32_t)0x9e3779b1u)
typedef struct um_block_s {
    struct um_block_s *next;
    uintptr_t key;
} um_block_t;

/* page->thread_free is one word: the head of the list of blocks other threads freed, the
 * list's length in bits 48-63 (user-space pointers have 48 bits), and a um_delayed_t in bits 0-1
 * (blocks are 16-byte aligned). With the length in the word, the owner takes the list over
 * without walking it: each block of it was written last by the thread that freed it, so a walk
 * is a chain of cache misses, one transfer from the other core per block, before the owner can
 * use any of them. A page holds at most 4096 blocks, so the length cannot overflow. */
#define UM_TF_STATE ((uintptr_t)3)
#define UM_TF_COUNT_SHIFT 48
#define UM_TF_COUNT_ONE ((uintptr_t)1 << UM_TF_COUNT_SHIFT)
#define UM_TF_LIST(tf) ((um_block_t *)((tf) & (UM_TF_COUNT_ONE - 1) & ~UM_TF_STATE))
#define UM_TF_COUNT(tf) ((size_t)((tf) >> UM_TF_COUNT_SHIFT))
typedef enum um_delayed_e {
    UM_DELAY_NORMAL = 0, /* remote frees push onto the page list */
    UM_DELAY_USE = 1,    /* page is full: the first remote free goes to heap->delayed_free to wake the owner */
    UM_DELAY_FREEING = 2, /* a remote thread is pushing onto heap->delayed_free right now */
    UM_DELAY_NEVER = 3,  /* page is abandoned or its heap is going away: never use the heap list */
} um_delayed_t;

/* Page owner word low bits: any bit set sends the owner's free down the slow path. */
#define UM_PAGE_HAS_ALIGNED ((uintptr_t)1) /* some block was handed out at an inner aligned offset */
#define UM_PAGE_IN_FULL ((uintptr_t)2)     /* page had no free block: out of its bin queue */
#define UM_PAGE_FLAGS (UM_PAGE_HAS_ALIGNED | UM_PAGE_IN_FULL)

typedef enum um_slot_e {
    UM_SLOT_CLEAN = 0, /* free page slot whose memory is not resident (fresh or purged) */
    UM_SLOT_DIRTY = 1, /* free page slot whose memory may be resident: purge after the delay */
    UM_SLOT_USED = 2,  /* page in use */
} um_slot_t;

struct um_heap_s;
struct um_segment_s;

/* ---- pages ---------------------------------------------------------------------------- */
/* A page's hot words: the fields malloc's and free()'s fast paths touch. A small page keeps them
 * in the last 128 bytes of its own memory, never inside a block: free() reaches them from the
 * block pointer with one `or` (p | 0xfff0 is 16 bytes before the page's end) instead of a
 * segment-map load, a shift and an index (docs/design.md, "Thread heaps and the fast path").
 * Medium and large pages, which free() reaches through the segment map anyway, keep theirs in the
 * segment header (um_segment_t.hot), so that their power-of-two classes (16, 32, 64 KiB) keep
 * every block of a page. The heap's direct[] table points at them too: malloc pops `free` here.
 * Huge segments have none.
 *
 * One list, last in first out, for malloc and the owner's free: the block freed last is the next
 * one handed out, and it is the one still in cache and in the TLB. (A separate list for frees,
 * taken over only when the allocation list runs dry, would give a program that frees and
 * allocates in a loop the blocks it freed long ago, long gone from the cache.) The price is one
 * count on malloc, `allocs`: emptiness is allocs == frees, and both counts are the statistics'
 * per-class mallocs and frees.
 *
 * The guard makes free() reject a pointer that is not 16-byte aligned at no cost: the fast path
 * keeps p's low 4 bits in the address it loads the owner from, so for a misaligned p it reads
 * the owner word 1..15 bytes too high. Such a load always takes its top byte from the guard,
 * 0xff, and no thread pointer has a nonzero top byte: the owner compare fails, and the slow path
 * reports the pointer. A page's memory reads zero until the page is first set up (owner 0: no
 * thread's), the guard is written before the owner, and a free page's owner is 0. */
/* Two cache lines, the owner's and everyone's. The first holds what the owner writes on every
 * malloc and free (list head, counts); the second the owner word, which every free reads,
 * other threads' frees included, and which changes only when the page is set up, fills or is
 * abandoned. With both on one line, each remote free read a line the owner was writing and
 * pulled it away from the owner's core, and the owner's next malloc pulled it back: two
 * transfers per block freed across threads (docs/design.md, "A page's hot words"). 128 bytes
 * and 64-aligned, so that the split holds in the segment header's hot[] too. */
#define UM_PAGE_HOT_SIZE 128
#if UM_SECURE
#define UM_HOT_OWNER_LINE_PAD (64 - 7 * 8 - 4)
#else
#define UM_HOT_OWNER_LINE_PAD (64 - 3 * 8 - 4)
#endif
typedef struct __attribute__((aligned(64))) um_page_hot_s {
    /* ---- the owner's line */
    struct um_block_s *free;       /* blocks to hand out, the last freed first (owner only) */
    /* Blocks handed out and given back since the page was set up (owner only; remote frees
     * count once collected). allocs - frees is the blocks in use: free() decrements nothing and
     * tests nothing, so a page it empties stays queued until a slow path finds it (umi_page_sweep). */
    uint64_t allocs;
    uint64_t frees;
#if UM_SECURE
    /* The secure build checks every link it follows against these (core/block.h). They sit with
     * the list head, on the same line: a pop reads them anyway. */
    uintptr_t secret;              /* random: this page's links are stored XORed with it and their address */
    uintptr_t start;               /* the first block: a link must point into [start, start + span) */
    uint64_t span;                 /* reserved * block_size */
    uint64_t block_div;            /* = um_page_t.block_div: and at a multiple of the block size from start */
#endif
    /* While the page is full (UM_PAGE_IN_FULL): the blocks in use at which it goes back in its
     * queue, with a batch of free blocks (set by page_to_full; see page_requeue_min); 0
     * otherwise. So "the owner's free has something to do" is one test for both kinds of page,
     * used <= requeue_used (a full page refilled, any other page emptied), and not a branch on
     * the page being full, which in a program that keeps most of its blocks in use goes one
     * way or the other at random. Kept here, on the line a free into the page reads anyway,
     * rather than derived from the page descriptor's sizes, a line in the segment header. */
    uint32_t requeue_used;
    uint8_t owner_line_pad[UM_HOT_OWNER_LINE_PAD];
    /* ---- everyone's line: read by every free, written rarely */
    uint8_t shared_line_pad[64 - 3 * 8];
    _Atomic uintptr_t owner;       /* owner thread id (its thread pointer) | UM_PAGE_* flags; 0 = none */
    uintptr_t guard[2];            /* UM_PAGE_GUARD while the page is in use (see above); last, at the page end */
} um_page_hot_t;
_Static_assert(sizeof(um_page_hot_t) == UM_PAGE_HOT_SIZE, "the fast path reaches the hot words from the page end");
_Static_assert(offsetof(um_page_hot_t, owner) == 64 + 40, "owner and guard end everyone's line");
#define UM_PAGE_GUARD (~(uintptr_t)0)

/* A page's descriptor, in its segment's header. */
typedef struct um_page_s {
    uint32_t block_size;      /* bytes per block (multiple of 16); 0 when the slot is free */
    uint32_t capacity;        /* blocks carved so far (lazily, to touch less memory): see `rotation` */
    _Atomic uintptr_t thread_free; /* blocks other threads freed: head | length << 48 | um_delayed_t */
    _Atomic(struct um_heap_s *) heap; /* owning heap, for the delayed-free wake-up */
    uint8_t *start;           /* the block at position 0, the page's lowest (see rotation) */
    uint32_t reserved;        /* blocks that fit in the page */
    uint16_t bin;             /* size class */
    uint8_t index;            /* position in the segment */
    uint8_t slot;             /* um_slot_t */
    uint8_t is_zero;          /* blocks not yet carved are known to be zero (fresh from the OS) */
    uint16_t rotation;        /* position of the first block carved: a small page's first blocks are
                               * those in its last OS page, beside its hot words; the i-th block
                               * carved lies at position (i + rotation) % reserved (page_extend) */
    uint32_t recarve;         /* blocks of `bin` carved in this slot before its free list was
                               * forgotten or the slot freed: resident (unless the slot was
                               * purged), so page_extend carves them again in one step */
    /* ~0 / block_size + 1: an offset below 2^32 is a multiple of block_size iff
     * offset * block_div <= block_div - 1 (mod 2^64; Lemire's test), which spares the generic
     * free path, where every medium and large block goes, a division. */
    uint64_t block_div;
    struct um_page_s *next;   /* bin queue links (owner only) */
    struct um_page_s *prev;
    uint64_t freed_at_ms;     /* when the slot became dirty, for the purge delay */
    uint64_t swept_allocs;    /* hot allocs at the last sweep: unchanged = idle since (umi_page_sweep) */
#if UM_SECURE
    /* = um_page_hot_t.secret, for other threads: a remote free encodes its link with it, and
     * reading it from the hot words, which the owner writes on every malloc, would bounce
     * that cache line between the threads (xmalloc-2t: 23 % slower) */
    uintptr_t secret;
#endif
} um_page_t;

/* ---- segments ------------------------------------------------------------------------- */
typedef enum um_kind_e { UM_KIND_SMALL, UM_KIND_MEDIUM, UM_KIND_LARGE, UM_KIND_HUGE, UM_KIND_EXTENT, UM_KIND_COUNT } um_kind_t;

/* An extent segment's map of its OS pages, in the header where a pooled segment has its page
 * descriptors. Bit i of a map is OS page i; the header's own pages (and the secure build's
 * guard page) are never free. Written under the owning arena's lock; the statistics and
 * um_owns read it without. */
typedef struct um_extent_map_s {
    struct um_extent_arena_s *arena; /* whose lock guards this segment */
    uint32_t free_pages;      /* bits set in free_map */
    uint32_t dirty_pages;     /* bits set in dirty_map */
    uint16_t longest_free;    /* no run of free pages is longer (exact after a search that failed) */
    uint64_t free_map[UM_EXTENT_WORDS];  /* page i belongs to no block */
    uint64_t dirty_map[UM_EXTENT_WORDS]; /* free page i may be resident: freed, not purged since */
    uint64_t aged_map[UM_EXTENT_WORDS];  /* free page i was dirty at the arena's last tick: purged at the next */
    uint64_t purged_map[UM_EXTENT_WORDS]; /* free page i was purged by the delay (a reuse regrets it) */
    uint64_t start_map[UM_EXTENT_WORDS]; /* a block starts at page i (what free() checks a pointer against) */
    uint64_t purged_at_ms;    /* when the delay last purged pages here (0: never, or um_trim did since) */
    uint64_t purged_age_ms;   /* how long at least those pages had been free then (core/purge_delay.c) */
    uint16_t length[UM_EXTENT_PAGES];    /* pages of the block starting at page i */
} um_extent_map_t;

typedef struct um_segment_s {
    uint32_t page_shift;      /* log2 of the page size: pointer -> page index is one shift */
    uint8_t kind;             /* um_kind_t */
    uint8_t page_count;       /* page slots in this segment */
    uint8_t used_pages;       /* slots in use (owner only) */
    uint8_t dirty_pages;      /* slots free but resident (owner only) */
    int16_t node;             /* NUMA node the memory is bound to, -1 if none */
    uint8_t page_kind;        /* what backs it: 0 = 4K pages, 1 = THP, 2 = 2M hugetlb, 3 = 1G; with
                               * UM_PAGES_LOCKED (0x80) when it is mlock'ed (hugepages/pagesize.h) */
    uint8_t abandoned;        /* on the abandoned list (core/abandon.c) */
    uint8_t multi_vma;        /* huge, made of cached pieces that may be several kernel mappings,
                               * so mremap can't resize it (realloc copies it once, to one mapping) */
    uint8_t exit_kept;        /* in the cache, resident for the threads after an exit beyond the
                               * first UM_HANDOFF_CACHE_KEEP: it expires after the base purge
                               * delay, not the learned one (core/segment.c, cache_trim) */
    uintptr_t cookie;         /* segment address ^ process cookie: checked on every free outside
                               * the small-page fast path, so kept in the header's first cache
                               * line with kind and page_shift, which that free reads anyway */
    size_t map_size;          /* bytes from map_base (a huge segment's: header, block, rounding) */
    void *map_base;           /* where its memory starts (before the header: aligned huge blocks) */
    _Atomic(struct um_heap_s *) heap; /* owning heap; NULL when abandoned or huge */
    struct um_segment_s *next; /* in the owner's list, the abandoned list or the cache */
    struct um_segment_s *prev;
    struct um_segment_s *all_next; /* in the registry of all segments (for statistics, trim) */
    struct um_segment_s *all_prev;
    uint64_t cached_at_ms;    /* when it entered the segment cache */
    uint64_t moved_dirty;     /* moved out of the region with its pages (core/segment.c): bit i set
                               * when its 64 KiB at i * 64 KiB may hold old bytes, for the format
                               * of an extent segment to take for dirty; 0 otherwise */
    union {
        struct {
            /* the hot words of medium and large pages, by page index (a small page keeps its
             * own at its end); all zero in a fresh or reformatted segment */
            um_page_hot_t hot[UM_SEGMENT_SIZE >> UM_MEDIUM_PAGE_SHIFT];
            um_page_t pages[UM_PAGES_MAX];
        };
        um_extent_map_t extents; /* UM_KIND_EXTENT */
    };
} um_segment_t;

/* ---- statistics ------------------------------------------------------------------------- */
/* A heap's counters, written by the owner alone (plain stores, read racily by statistics), all
 * on slow paths. Pooled mallocs and frees are counted by each page (um_page_hot_t.allocs and
 * .frees, which the fast paths keep anyway); a page's counts are added here when its slot leaves
 * the heap. A snapshot adds those of the pages in use and the remote frees not yet collected
 * (stats/snapshot.c), which makes mallocs, frees and live blocks per class exact whenever the
 * program is quiet. */
#define UM_CALLS 8 /* = UM_CALL_COUNT of include/umalloc.h */
typedef struct um_heap_stats_s {
    uint64_t mallocs[UM_BIN_COUNT];  /* of pages that left the heap, and of its extent cache */
    uint64_t frees[UM_BIN_COUNT];
    uint64_t remote_frees;           /* of frees: gathered from the remote list */
    uint64_t calls[UM_CALLS];        /* entry points other than malloc and free (those are derived) */
    uint64_t internal_allocs;        /* blocks allocated by calloc, realloc, aligned_alloc... */
    uint64_t internal_frees;         /* blocks freed by realloc, free_sized... */
    uint64_t huge_reuses;            /* huge blocks it freed and took again for its next one (core/huge.c): a free and a malloc each */
    uint64_t huge_reused_bytes;      /* their usable bytes, as handed out again */
} um_heap_stats_t;

/* A thread's freed extent blocks of 20..64 KiB, kept for its next mallocs of the class
 * (core/extent_cache.c). Owner only, but `bytes`, which the statistics read. */
typedef struct um_extent_cache_s {
    void *blocks[UM_ECACHE_BINS][UM_ECACHE_SLOTS]; /* per class a stack, newest on top */
    uint8_t count[UM_ECACHE_BINS];  /* blocks in each stack */
    uint8_t low[UM_ECACHE_BINS];    /* each stack's lowest count since the last collection: blocks
                                     * below it were not used meanwhile */
    uint8_t cap[UM_ECACHE_BINS];    /* blocks each stack holds before a free gives half back: the
                                     * class's share (UM_ECACHE_CLASS_BYTES) or more; 0 until its first push */
    uint16_t misses[UM_ECACHE_BINS]; /* mallocs each stack could not serve since window_ms */
    uint8_t cooldown[UM_ECACHE_BINS]; /* collections to go before a stack whose growth did not
                                     * stop its misses may grow again */
    uint64_t window_ms;             /* start of the window the misses are counted in */
    size_t bytes;                   /* in all stacks (statistics: free, not live) */
    uint64_t collected_ms;          /* when unused blocks last went back to their arenas */
} um_extent_cache_t;

/* ---- heaps ---------------------------------------------------------------------------- */
typedef struct um_page_queue_s {
    um_page_t *first;         /* the page allocations come from */
    um_page_t *last;
} um_page_queue_t;

typedef struct um_heap_s {
    uintptr_t tid;                         /* owner's thread id (thread pointer); pages carry it */
    /* direct[size] is the hot words of the page to allocate `size` bytes from, for sizes up to
     * UM_DIRECT_MAX: one load from size to free list, with no rounding arithmetic (8 KiB a
     * thread; the sizes a program uses touch a few lines of it). Never NULL: an empty heap points
     * every slot at umi_hot_empty, whose free list is NULL. */
    um_page_hot_t *direct[UM_DIRECT_SLOTS];
    /* bin_hot[bin] is the hot words of queues[bin].first, or umi_hot_empty: the same one load for
     * sizes above UM_DIRECT_MAX, after rounding the size to its bin. Without it malloc reaches a
     * medium block through the page descriptor in the segment header, one more cache line. */
    um_page_hot_t *bin_hot[UM_BIN_COUNT];
    um_page_queue_t queues[UM_BIN_COUNT];  /* pages of each bin that may have free blocks */
    _Atomic(um_block_t *) delayed_free;    /* blocks freed remotely into full pages (wakes them) */
    um_segment_t *segments[UM_KIND_COUNT]; /* owned segments of each kind with a free page slot */
    um_segment_t *full_segments;           /* owned segments with every slot in use */
    size_t dirty_pages;                    /* free-but-resident page slots, for the purge */
    uint64_t next_purge_ms;                /* don't look for purgeable pages before this */
    uint64_t next_sweep_ms;                /* don't look for empty queued pages before this (umi_page_sweep) */
    uint32_t slot_sweep_wait;              /* new pages to take before a walk for empty ones that found none walks again (umi_page_sweep_for_slot) */
    uint32_t slow_calls;                   /* allocation slow-path entries, to pace the sweep's clock reads */
    uint32_t refills;                      /* allocations that found the bin's first page dry (see malloc_refill) */
    unsigned purge_epoch;                  /* last um_trim request honoured (see umi_purge_epoch) */
    uint32_t stranded_credit;              /* bytes of fresh slots taken, not yet matched by dirty slots of the other kind purged (core/slots.c) */
    /* Times each bin borrowed blocks from a slightly larger bin's first page (page_borrow in
     * core/page.c); UM_BORROW_MAX once it has had a page of its own */
    uint8_t borrows[UM_BIN_COUNT];
    uint8_t is_backup;                     /* the shared locked heap for exiting threads */
    uint8_t orphaned;                      /* a dead parent thread's, in a fork child: never used again (umi_heap_orphan_others) */
    uint8_t extent_arena;                  /* the arena its big blocks come from, + 1 (0: none yet) */
    uint8_t extent_ops;                    /* its operations on its arena since it last counted... */
    uint8_t extent_busy;                   /* ...and how many of them found it busy (core/extent.c) */
    uint8_t extent_cache_arena;            /* the arena of its blocks of 20..64 KiB, + 1 (0: none yet) */
    um_extent_cache_t extent_cache;        /* freed blocks of 20..64 KiB for its next mallocs */
    struct um_segment_s *huge_kept;        /* a huge block it freed, kept for its next huge malloc (core/huge.c) */
    uint64_t huge_kept_ms;                 /* when a sweep first saw it kept (0: not yet): released after the purge delay */
    uint8_t huge_keeper;                   /* holds one of the UM_HUGE_KEEPERS places (core/huge.c) */
    /* The NUMA placement key its pages come from (numa/policy.h: its thread's node under
     * `local`), UMI_NUMA_UNSET before its first refill. Set on slow paths when there are
     * several nodes (umi_heap_numa_check); on one node it stays unset and unread. */
    int16_t numa_node;
#if UM_SECURE
    uint64_t rng;                          /* counter of umi_heap_random: page secrets, carving order */
#endif
    um_heap_stats_t stats;                 /* this heap's counters (owner writes) */
    uint64_t handed_at_ms;                 /* when its thread exited and handed it off (core/handoff.c) */
    uint8_t handed;                        /* on the handed-off list (umi_abandoned_lock) */
    struct um_heap_s *reg_next;            /* registry of live heaps (statistics); the pool; the handed-off list */
    struct um_heap_s *reg_prev;
} um_heap_t;

/* ---- extent arenas ----------------------------------------------------------------------- */
/* Big blocks come from arenas shared by all threads (core/extent.c): the first, and up to one
 * per CPU for threads that find it busy too often. Each on cache lines of its own: two threads
 * on two arenas must not share a line through their locks. */
typedef struct __attribute__((aligned(64))) um_extent_arena_s {
    um_lock_t lock;
    struct um_segment_s *segments; /* its extent segments, oldest first (first fit) */
    uint64_t next_tick_ms;         /* when the free pages dirty since the last tick are aged, the aged purged */
    uint64_t ticked_ms;            /* when it last ticked (a thread's exit ticks it only a while after) */
    size_t dirty_pages;            /* over its segments, so that a tick with nothing to do is skipped */
    struct um_extent_counts_s *counts; /* its blocks per class */
    /* The quick list (core/extent.c): blocks the program freed, kept whole for the next malloc
     * of their length; in use as far as the page maps know, marked free in their second word. */
    void *quick[UM_EXTENT_QUICK_SLOTS];          /* the blocks, oldest first */
    uint16_t quick_pages[UM_EXTENT_QUICK_SLOTS]; /* each one's length in pages */
    uint8_t quick_count;           /* blocks in quick[] */
    size_t quick_bytes;            /* their bytes (statistics: free, not live) */
} um_extent_arena_t;

/* An arena's counts of blocks handed out and freed per class, written under its lock, apart
 * from the arena so that a process that never allocates a big block touches none of them. */
typedef struct um_extent_counts_s {
    uint64_t mallocs[UM_BIN_COUNT];
    uint64_t frees[UM_BIN_COUNT];
} um_extent_counts_t;

#endif /* UM_TYPES_H */
