/* umalloc: a thread-caching, NUMA-aware, huge-page-capable memory allocator.
 *
 * Two ways to use it:
 *  - LD_PRELOAD=libumalloc.so PROGRAM: malloc, free and the whole malloc family are replaced;
 *    the um_* functions below are exported too, for programs that want the extras.
 *  - link libumalloc.a: only the um_* names exist; the C library's malloc is left alone.
 *    This is how the tests, the sanitizer builds and the fuzzer use the core.
 *
 * Semantics follow glibc wherever C and POSIX leave room (see docs/design.md, "Semantics"):
 * every result is 16-byte aligned, um_malloc(0) returns a unique pointer, failure returns NULL
 * with errno = ENOMEM, um_realloc(p, 0) frees p and returns NULL, um_free preserves errno.
 */
#ifndef UMALLOC_H
#define UMALLOC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UMALLOC_VERSION "0.1.0"

#if defined(__GNUC__)
#define UM_API __attribute__((visibility("default")))
#define UM_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#else
#define UM_API
#define UM_MALLOC_ATTR
#endif

/* ---- the malloc family, prefixed ---------------------------------------------------------- */
UM_API UM_MALLOC_ATTR void *um_malloc(size_t size);
UM_API UM_MALLOC_ATTR void *um_calloc(size_t count, size_t size);
UM_API void *um_realloc(void *p, size_t size);
UM_API void *um_reallocarray(void *p, size_t count, size_t size);
UM_API void um_free(void *p);
/* C23: size must be the size asked for (or anything up to the usable size); checked cheaply. */
UM_API void um_free_sized(void *p, size_t size);
UM_API void um_free_aligned_sized(void *p, size_t alignment, size_t size);
UM_API int um_posix_memalign(void **out, size_t alignment, size_t size);
UM_API UM_MALLOC_ATTR void *um_aligned_alloc(size_t alignment, size_t size);
UM_API UM_MALLOC_ATTR void *um_memalign(size_t alignment, size_t size);
UM_API UM_MALLOC_ATTR void *um_valloc(size_t size);
UM_API UM_MALLOC_ATTR void *um_pvalloc(size_t size);
/* Bytes usable at p (>= the size asked for); 0 for NULL or a pointer umalloc does not own. */
UM_API size_t um_malloc_usable_size(const void *p);

/* ---- the extras ---------------------------------------------------------------------------- */
/* 1 if p is the start of a live block (or an aligned pointer into one) umalloc handed out,
 * 0 otherwise. Cheap: one table lookup, never touches memory umalloc does not own. */
UM_API int um_owns(const void *p);
/* Give every free page back to the OS now (all threads' retired pages, cached segments,
 * abandoned segments). Returns 1 if any memory was released, like glibc's malloc_trim. */
UM_API int um_trim(size_t pad);
/* Make the calling thread give back its heap now, as it would at thread exit. The thread may
 * keep allocating afterwards; it then gets a fresh heap. */
UM_API void um_thread_done(void);
UM_API const char *um_version(void);
/* Verify every invariant of the heap: every thread's heap, segment, page and free list,
 * abandoned and cached memory, the remote-free lists, and that the statistics add up. Prints
 * one line per broken invariant on stderr (what, and where) and returns how many there were:
 * 0 means consistent. The program must be quiet meanwhile (no other thread allocating or
 * freeing: their heaps would change under the walk), as in a test after its threads are
 * joined. It walks every page: milliseconds for a heap of a few hundred MiB. UMALLOC_CHECK=1
 * runs it as the program goes (docs/tuning.md). */
UM_API size_t um_check_heap(void);

/* Process-wide totals, summed over every thread when called (a few microseconds). */
typedef struct um_totals_s {
    size_t mapped_bytes;    /* address space umalloc holds from the OS, in segments and large blocks */
    size_t committed_bytes; /* of that, not purged: what can count towards RSS */
    size_t live_bytes;      /* usable bytes of blocks handed out and not yet freed */
    size_t live_blocks;     /* blocks handed out and not yet freed */
    size_t large_bytes;     /* of live_bytes: blocks mapped on their own */
    size_t free_bytes;      /* bytes cached in pages, ready for reuse */
    size_t metadata_bytes;  /* segment headers, heap structures, tables */
    size_t purged_bytes;    /* bytes given back to the OS so far (cumulative) */
    size_t threads;         /* thread heaps alive */
    size_t segments;        /* segments alive */
} um_totals_t;
UM_API void um_get_totals(um_totals_t *out);

/* ---- run-time options ------------------------------------------------------------------- */
/* Every option is an environment variable UMALLOC_<NAME>, read once at start (docs/tuning.md,
 * or run any program with UMALLOC_HELP=1). name may be given with or without the UMALLOC_
 * prefix, in any case ("UMALLOC_PURGE_DELAY_MS", "purge_delay_ms").
 * um_option_get: the value as a number: booleans 0/1, sizes in bytes, durations in ms, enums as
 * the index of the name in the list UMALLOC_HELP shows (first = 0), signals as the signal
 * number (0 = none), node lists as a 64-bit mask (bit n = node n), strings as their length.
 * Returns 0, or -1 with errno = ENOENT if no option has that name.
 * um_option_get_string: the value as text, exactly as UMALLOC_VERBOSE=1 shows it. Returns 0;
 * -1 with errno = ENOENT for an unknown name; -1 with errno = ERANGE if len is too small (buf
 * then holds as much as fits, NUL-terminated). UM_OPTION_TEXT_MAX is always enough. */
#define UM_OPTION_TEXT_MAX 4096
UM_API int um_option_get(const char *name, long long *value);
UM_API int um_option_get_string(const char *name, char *buf, size_t len);

/* ---- statistics --------------------------------------------------------------------------- */
/* A snapshot of every counter (docs/stats.md). Kept per thread by each thread itself, with no
 * atomic read-modify-write on the allocation fast paths, and summed when read: exact when the
 * program is quiet, a close approximation while other threads allocate. */
#define UM_STATS_VERSION 4 /* 2: 81 classes (4 per doubling above 8 KiB); 3: per-node committed, live, migrated;
                            * huge-page fallbacks, locked bytes; 4: 76 classes (4 per doubling above 4 KiB) */
/* Entries of um_stats_t.classes: size classes 1.. (16 B .. 512 KiB); entry 0 is unused, and so are
 * those after the last class (76 since version 4), all zero: the array keeps its length, so that
 * the fields after it stay where programs built against an older header read them. */
#define UM_STATS_CLASSES 81
#define UM_STATS_NODES 64
enum um_stats_call {      /* entry points, for um_stats_t.calls */
    UM_CALL_MALLOC, UM_CALL_FREE, UM_CALL_CALLOC, UM_CALL_REALLOC, UM_CALL_ALIGNED, /* posix_memalign, aligned_alloc, memalign, valloc, pvalloc */
    UM_CALL_USABLE_SIZE, UM_CALL_FREE_SIZED, UM_CALL_TRIM, UM_CALL_COUNT
};
enum um_stats_page_kind { UM_PAGES_4K, UM_PAGES_THP, UM_PAGES_2M, UM_PAGES_1G, UM_PAGES_KINDS };

typedef struct um_stats_class_s {
    size_t size;           /* block size of the class */
    uint64_t mallocs;      /* blocks of this class handed out since start */
    uint64_t frees;        /* blocks of this class given back since start */
    uint64_t live_blocks;  /* mallocs - frees */
    uint64_t live_bytes;   /* live_blocks * size */
} um_stats_class_t;

typedef struct um_stats_s {
    unsigned version;            /* UM_STATS_VERSION */
    uint64_t calls[UM_CALL_COUNT];
    /* totals */
    uint64_t mallocs, frees;     /* blocks handed out / given back, all sizes (large included) */
    uint64_t live_blocks, live_bytes;
    uint64_t peak_live_bytes;    /* high-water mark; see docs/stats.md for how it is sampled */
    uint64_t usable_bytes;       /* usable bytes of every block handed out since start */
    uint64_t requested_bytes;    /* bytes asked for, if counted (requested_counted) */
    int requested_counted;       /* 0 unless built with UM_STATS_REQUESTED=1 (it costs the fast path) */
    uint64_t mapped_bytes;       /* address space held from the OS */
    uint64_t committed_bytes;    /* of that, possibly resident */
    uint64_t free_bytes;         /* cached in pages, ready for reuse */
    uint64_t metadata_bytes;     /* headers and heap structures */
    uint64_t purged_bytes;       /* given back to the OS since start */
    uint64_t remote_frees;       /* blocks freed by a thread other than their owner */
    uint64_t failed_allocs;      /* allocations that returned NULL */
    uint64_t invalid_frees;      /* double frees and pointers umalloc did not allocate */
    uint64_t large_blocks, large_bytes; /* live blocks mapped on their own */
    uint64_t threads;            /* thread heaps alive */
    uint64_t threads_exited;     /* thread heaps given back since start */
    uint64_t pages;              /* pages in use */
    uint64_t segments;           /* segments and large mappings alive */
    um_stats_class_t classes[UM_STATS_CLASSES];
    unsigned node_count;         /* nodes with an entry in node_mapped_bytes */
    uint64_t node_mapped_bytes[UM_STATS_NODES]; /* by NUMA node (unbound memory counts as node 0) */
    uint64_t page_kind_mapped_bytes[UM_PAGES_KINDS]; /* by what backs it: 4 KiB, THP (advised), 2 MiB, 1 GiB */
    /* By NUMA node, as node_mapped_bytes (memory over several nodes counts in equal shares):
     * committed counts, of pages in use, the OS pages their carved blocks span (what the kernel
     * can have made resident), not whole pages as committed_bytes does; live the blocks' usable
     * bytes; migrated the OS pages um_numa_migrate moved to the node since start. */
    uint64_t node_committed_bytes[UM_STATS_NODES];
    uint64_t node_live_bytes[UM_STATS_NODES];
    uint64_t node_migrated_pages[UM_STATS_NODES];
    uint64_t hugepage_fallbacks; /* mappings that got smaller pages than UMALLOC_HUGEPAGES asked (pool empty) */
    uint64_t locked_bytes;       /* of mapped_bytes, locked in RAM (UMALLOC_MLOCK) */
} um_stats_t;

/* Fill *out (about 6.5 KiB). Takes the statistics locks briefly; never allocates.
 * um_stats_get is a macro that passes the size of this header's um_stats_t, so that a program
 * built against an older, shorter one gets the fields it knows and nothing written past them
 * (the library's function um_stats_get, which such programs call, fills version 2's fields). */
UM_API void um_stats_get_sized(um_stats_t *out, size_t size);
UM_API void(um_stats_get)(um_stats_t *out);
#define um_stats_get(out) um_stats_get_sized((out), sizeof(um_stats_t))
/* Write a dump to fd: format 0 = text (summary, then classes, nodes, page sizes), 1 = JSON
 * (one object on one line). Returns 0, or -1 if writing failed. Never allocates. */
UM_API int um_stats_print(int fd, int format);
#define UM_STATS_TEXT 0
#define UM_STATS_JSON 1

/* ---- NUMA placement ------------------------------------------------------------------------ */
/* On a machine with several NUMA nodes umalloc binds the memory it maps to a node before it is
 * first touched, per UMALLOC_NUMA_POLICY (docs/numa.md). On one node all of this is a no-op: no
 * system call is made unless one of the calls below asks the kernel something. */
enum um_numa_policy {
    UM_NUMA_PROCESS = -1,  /* (um_numa_set_thread_policy) back to the process's policy */
    UM_NUMA_LOCAL,         /* each thread's memory on the node it runs on */
    UM_NUMA_INTERLEAVE,    /* pages round-robin over the node list */
    UM_NUMA_BIND,          /* only on the node list (allocation fails, or the OOM killer runs, when full) */
    UM_NUMA_PREFERRED,     /* on the node list first, elsewhere when it is full */
    UM_NUMA_NONE,          /* left to the kernel (first touch) */
};
/* Highest online node + 1 (1 on a machine without NUMA). No system call. */
UM_API int um_numa_node_count(void);
/* A block of at least `size` bytes whose memory is bound to `node` (preferred: the kernel falls
 * back to other nodes only when that one is full). Cost: a mapping of its own (at least 8 KiB of
 * address space, one OS page of header), a system call or two unless a freed block on that node
 * is cached: meant for buffers, not for many small objects. On one node it is um_malloc. NULL
 * with errno EINVAL for a node that is not online, ENOMEM when out of memory. Free with um_free. */
UM_API void *um_malloc_onnode(size_t size, int node);
/* The node the OS page holding p lives on now; -1 with errno ENOENT if that page is not resident
 * (never written), or another errno from move_pages(2). One system call. */
UM_API int um_numa_node_of(const void *p);
/* Move the OS pages of the block p points to (from um_malloc & co.) to `node` and return how
 * many moved (pages already there, and pages never written, do not count); -1 with errno EINVAL
 * for a pointer that is not a live umalloc block or a node that is not online. A block mapped on
 * its own is also bound to `node` from then on; a pooled block shares its first and last page
 * with its neighbours, which move with it. Cost: about three system calls per 256 pages (the
 * kernel copies every page: ~0.1-1 ms per MiB). Counted in um_stats_t.node_migrated_pages. */
UM_API long um_numa_migrate(void *p, int node);
/* The calling thread's policy, overriding UMALLOC_NUMA_POLICY / UMALLOC_NUMA_NODES for the memory
 * it allocates from now on: `policy` from enum um_numa_policy (UM_NUMA_PROCESS: the process's
 * again), `nodes` a mask (bit n = node n; 0 = all online nodes). Blocks the thread already has
 * stay where they are; its heap stops allocating from pages placed otherwise at once (a walk of
 * its pages, when the placement changes). Returns 0, or -1 with errno EINVAL (unknown policy, or
 * no online node in `nodes`). */
UM_API int um_numa_set_thread_policy(int policy, uint64_t nodes);

/* ---- mapped files ---------------------------------------------------------------------------- */
/* Map a whole file for a latency-critical reader, with the choices UMALLOC_PREFAULT, UMALLOC_MLOCK
 * and UMALLOC_HUGEPAGES make for the heap (docs/tuning.md, "Huge pages..."). flags: exactly one
 * of UM_MAP_READ (read-only, private) and UM_MAP_SHARED (read-write, shared with the file),
 * plus any of
 *   UM_MAP_PREFAULT  read every page in now (no fault after the call; page cache and tables);
 *   UM_MAP_LOCK      lock it in RAM (mlock2): failure to lock is failure of the call;
 *   UM_MAP_HUGE      huge pages where the file system allows: a hugetlbfs file is mapped with
 *                    its pages, elsewhere the mapping is 2 MiB-aligned and advised
 *                    (MADV_HUGEPAGE: tmpfs with huge=advise/within_size, read-only file THP).
 * Returns the address and sets *size (the mapping's length: the file's size rounded up to the
 * page that backs it; pass it to um_unmap_file). On failure: NULL, nothing left mapped, and
 * errno says why: EINVAL (NULL path or size, flags not as above, an empty file), ENODEV (not a
 * regular file), what open(2) says (ENOENT, EACCES...), ENOMEM or EAGAIN (the lock went over
 * RLIMIT_MEMLOCK), EPERM (locking not allowed). */
#define UM_MAP_READ 0x1
#define UM_MAP_SHARED 0x2
#define UM_MAP_PREFAULT 0x4
#define UM_MAP_LOCK 0x8
#define UM_MAP_HUGE 0x10
UM_API void *um_map_file(const char *path, int flags, size_t *size);
/* Unmap what um_map_file returned (p and *size as it gave them): 0, or -1 with errno EINVAL. */
UM_API int um_unmap_file(void *p, size_t size);

#ifdef __cplusplus
}
#endif
#endif /* UMALLOC_H */
