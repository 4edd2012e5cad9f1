/* Statistics dumps: a um_stats_t as text or as one JSON line, into a caller's buffer or straight
 * to a file descriptor; and um_stats_print. See docs/stats.md for the formats.
 *
 * Everything here is async-signal-safe: no malloc, no stdio, no locks; numbers are formatted with
 * umi_fmt (base/fmt.h) and written with write(2). The only state is um_stats_print's static
 * buffer, taken with an atomic flag (a caller that finds it busy formats on its stack instead).
 *
 * Output is made of records (one line of text, or one member / one array element of JSON). A
 * record goes out whole or not at all, so a dump into a buffer that is too small is cut at a
 * line (text) or a class (JSON) boundary, and says so: the text ends with a "cut" line, the JSON
 * object is closed properly and carries "truncated":true. Streaming to a descriptor never cuts:
 * the buffer is written out whenever it fills. */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "base/fmt.h"
#include "stats/stats.h"
#include "umalloc.h"

/* From the lead's stats side (stats/stats.h); repeated here so that this file states exactly
 * what it relies on. */
int umi_stats_snapshot(um_stats_t *out, int in_signal);

/* From stats/signal.c: the dump bookkeeping shown in every dump. meta[0] = sequence number of
 * this dump (taken if take_seq), [1] signals received, [2] dumps deferred, [3] deferred requests
 * merged into another dump, [4] dumps skipped. */
void umi_stats_dump_meta(uint64_t meta[5], int take_seq);

/* Defined below; used by stats/signal.c. */
size_t umi_stats_render(char *buf, size_t cap, int fd, const um_stats_t *s, int format,
                       const char *reason, int sig, const uint64_t meta[5], int *failed);

/* ---- the record sink ------------------------------------------------------------------------ */

#define UM_DUMP_RESERVE 160 /* kept free in buffer mode for the closing records */
#define UM_DUMP_RECORD 1024 /* longest record (the JSON totals: at most ~750 bytes) */

typedef struct {
    char *buf;
    size_t cap, len;
    int fd;             /* >= 0: streaming (flush when full); -1: buffer mode (cut when full) */
    int cut;            /* a record did not fit: everything after it is dropped */
    int failed;         /* a write failed */
    const char *closer; /* JSON: what closes the array being written ("]" or "") */
    uint64_t written;   /* bytes written to fd (streaming) */
} um_sink;

static void sink_flush(um_sink *k) {
    if (k->fd < 0 || k->len == 0) return;
    if (umi_write_all(k->fd, k->buf, k->len) != 0) k->failed = 1;
    else k->written += k->len;
    k->len = 0;
}

/* Append n bytes; final records may use the reserve. Returns 1 if the record went in. */
static int sink_put(um_sink *k, const char *s, size_t n, int final) {
    if (k->cut && !final) return 0;
    size_t reserve = final ? 0 : UM_DUMP_RESERVE;
    if (k->len + n + reserve > k->cap) {
        if (k->fd >= 0) sink_flush(k);
        if (k->len + n + reserve > k->cap) {
            if (k->fd >= 0 && !final && n + reserve > k->cap) { /* bigger than the buffer: write it directly */
                if (umi_write_all(k->fd, s, n) != 0) k->failed = 1;
                else k->written += n;
                return 1;
            }
            if (!final) {
                k->cut = 1;
                return 0;
            }
            if (k->len + n > k->cap) return 0;
        }
    }
    memcpy(k->buf + k->len, s, n);
    k->len += n;
    return 1;
}

__attribute__((format(printf, 2, 3))) static int rec(um_sink *k, const char *fmt, ...) {
    char tmp[UM_DUMP_RECORD];
    va_list ap;
    va_start(ap, fmt);
    size_t n = umi_vfmt(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    return sink_put(k, tmp, n, 0);
}

__attribute__((format(printf, 2, 3))) static void rec_final(um_sink *k, const char *fmt, ...) {
    char tmp[UM_DUMP_RECORD];
    va_list ap;
    va_start(ap, fmt);
    size_t n = umi_vfmt(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sink_put(k, tmp, n, 1);
}

/* ---- numbers ---------------------------------------------------------------------------------- */

typedef unsigned long long ull;

/* v bytes in human units: "512 B", "1.5 KiB", "12.0 MiB", "3.2 GiB", "1.0 TiB" (1024-based, one
 * decimal, rounded). Writes into b (at least 24 bytes); returns b. */
static const char *human(char *b, size_t cap, uint64_t v) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (v < 1024) {
        umi_fmt(b, cap, "%llu B", (ull)v);
        return b;
    }
    unsigned u = 0;
    uint64_t unit = 1;
    while (u < 6 && v / unit >= 1024) {
        unit *= 1024;
        u++;
    }
    uint64_t whole = v / unit, rem = v % unit;
    uint64_t tenth = (unit >= ((uint64_t)1 << 50)) ? rem / (unit / 10) : (rem * 10 + unit / 2) / unit;
    if (tenth >= 10) {
        whole++;
        tenth = 0;
    }
    if (whole >= 1024 && u < 6) { /* 1023.96 KiB rounds to 1024.0 KiB: say 1.0 MiB */
        whole = 1;
        tenth = 0;
        u++;
    }
    umi_fmt(b, cap, "%llu.%llu %s", (ull)whole, (ull)tenth, units[u]);
    return b;
}

/* The same for a signed quantity. */
static const char *human_signed(char *b, size_t cap, long long v) {
    if (v >= 0) return human(b, cap, (uint64_t)v);
    b[0] = '-';
    human(b + 1, cap - 1, (uint64_t)0 - (uint64_t)v);
    return b;
}

static const char *const call_names[UM_CALL_COUNT] = {
    "malloc", "free", "calloc", "realloc", "aligned", "usable_size", "free_sized", "trim",
};
static const char *const page_names[UM_PAGES_KINDS] = {"4K", "THP", "2M", "1G"};

/* ---- text ------------------------------------------------------------------------------------- */

/* One row of the summary equation. */
static void text_row(um_sink *k, const char *op, const char *name, long long v, const char *note) {
    char h[32];
    rec(k, "  %s %-15s %11s %16lld B   %s\n", op, name, human_signed(h, sizeof h, v), v, note);
}

static void render_text(um_sink *k, const um_stats_t *s, const char *reason, int sig,
                        const uint64_t meta[5], long pid, long long now) {
    char h1[32], h2[32], h3[32], h4[32];
    if (sig > 0)
        rec(k, "umalloc %s statistics: pid %ld, time %lld (unix seconds), dump %llu (%s, signal %d)\n",
            UMALLOC_VERSION, pid, now, (ull)meta[0], reason, sig);
    else
        rec(k, "umalloc %s statistics: pid %ld, time %lld (unix seconds), dump %llu (%s)\n",
            UMALLOC_VERSION, pid, now, (ull)meta[0], reason);

    /* The summary: where every mapped byte is. The first three come from the counters and the
     * page walk; the last two are what is left, computed so that the sum is exact. */
    long long mapped = (long long)s->mapped_bytes, committed = (long long)s->committed_bytes;
    long long live = (long long)s->live_bytes, freeb = (long long)s->free_bytes,
              meta_b = (long long)s->metadata_bytes;
    long long other = committed - live - freeb - meta_b; /* committed, in no block and no page in use */
    long long uncommitted = mapped - committed;
    rec(k, "summary: where the mapped address space goes (live + free + metadata + idle + not committed = mapped)\n");
    char note[160];
    umi_fmt(note, sizeof note, "%llu blocks handed out and not freed (of them large: %llu, %s)",
           (ull)s->live_blocks, (ull)s->large_blocks, human(h1, sizeof h1, s->large_bytes));
    text_row(k, " ", "live", live, note);
    text_row(k, "+", "free in pages", freeb, "cached in pages in use, ready for reuse");
    text_row(k, "+", "metadata", meta_b, "segment headers, heap structures, tables");
    text_row(k, "+", "idle committed", other,
             "empty pages kept for reuse, large-block rounding (committed, not in use)");
    text_row(k, "+", "not committed", uncommitted, "not resident: purged or never touched");
    umi_fmt(note, sizeof note, "in %llu segments and large mappings", (ull)s->segments);
    text_row(k, "=", "mapped", mapped, note);
    rec(k, "  mapped = live + free + metadata + idle + not committed: %lld = %lld + %lld + %lld + %lld + %lld bytes\n",
        mapped, live, freeb, meta_b, other, uncommitted);
    rec(k, "  committed %s (%llu B); peak live %s (%llu B); purged since start %s (%llu B)\n",
        human(h1, sizeof h1, s->committed_bytes), (ull)s->committed_bytes,
        human(h2, sizeof h2, s->peak_live_bytes), (ull)s->peak_live_bytes,
        human(h3, sizeof h3, s->purged_bytes), (ull)s->purged_bytes);
    if (s->requested_counted)
        rec(k, "  since start: %llu blocks handed out, %llu freed; usable %s (%llu B), requested %s (%llu B)\n",
            (ull)s->mallocs, (ull)s->frees, human(h1, sizeof h1, s->usable_bytes), (ull)s->usable_bytes,
            human(h2, sizeof h2, s->requested_bytes), (ull)s->requested_bytes);
    else
        rec(k, "  since start: %llu blocks handed out, %llu freed; usable %s (%llu B), requested not counted\n",
            (ull)s->mallocs, (ull)s->frees, human(h1, sizeof h1, s->usable_bytes), (ull)s->usable_bytes);

    rec(k, "size classes (those with mallocs > 0):\n");
    rec(k, "  %5s %10s %14s %14s %14s %29s\n", "class", "size", "mallocs", "frees", "live blocks", "live bytes");
    for (int c = 1; c < UM_STATS_CLASSES; c++) {
        const um_stats_class_t *cl = &s->classes[c];
        if (cl->mallocs == 0) continue;
        rec(k, "  %5d %10zu %14llu %14llu %14llu %12s %14llu B\n", c, cl->size, (ull)cl->mallocs,
            (ull)cl->frees, (ull)cl->live_blocks, human(h1, sizeof h1, cl->live_bytes), (ull)cl->live_bytes);
    }
    if (s->large_blocks > 0 || s->large_bytes > 0)
        rec(k, "  large blocks (mapped on their own): %llu live, %s (%llu B)\n", (ull)s->large_blocks,
            human(h1, sizeof h1, s->large_bytes), (ull)s->large_bytes);

    unsigned nodes = s->node_count > UM_STATS_NODES ? UM_STATS_NODES : s->node_count;
    rec(k, "NUMA nodes (%u):\n", nodes);
    for (unsigned n = 0; n < nodes; n++)
        rec(k, "  node %-3u %11s %16llu B mapped, %s committed (%llu B), %s live (%llu B), %llu pages migrated\n", n,
            human(h1, sizeof h1, s->node_mapped_bytes[n]), (ull)s->node_mapped_bytes[n],
            human(h2, sizeof h2, s->node_committed_bytes[n]), (ull)s->node_committed_bytes[n],
            human(h3, sizeof h3, s->node_live_bytes[n]), (ull)s->node_live_bytes[n], (ull)s->node_migrated_pages[n]);
    rec(k, "page sizes (mapped): %s %s (%llu B), %s %s (%llu B), %s %s (%llu B), %s %s (%llu B)\n",
        page_names[0], human(h1, sizeof h1, s->page_kind_mapped_bytes[0]), (ull)s->page_kind_mapped_bytes[0],
        page_names[1], human(h2, sizeof h2, s->page_kind_mapped_bytes[1]), (ull)s->page_kind_mapped_bytes[1],
        page_names[2], human(h3, sizeof h3, s->page_kind_mapped_bytes[2]), (ull)s->page_kind_mapped_bytes[2],
        page_names[3], human(h4, sizeof h4, s->page_kind_mapped_bytes[3]), (ull)s->page_kind_mapped_bytes[3]);
    rec(k, "huge-page fallbacks: %llu; locked: %s (%llu B)\n", (ull)s->hugepage_fallbacks,
        human(h1, sizeof h1, s->locked_bytes), (ull)s->locked_bytes);
    rec(k, "calls: %s %llu, %s %llu, %s %llu, %s %llu, %s %llu, %s %llu, %s %llu, %s %llu\n",
        call_names[0], (ull)s->calls[0], call_names[1], (ull)s->calls[1], call_names[2], (ull)s->calls[2],
        call_names[3], (ull)s->calls[3], call_names[4], (ull)s->calls[4], call_names[5], (ull)s->calls[5],
        call_names[6], (ull)s->calls[6], call_names[7], (ull)s->calls[7]);
    rec(k, "threads: %llu alive, %llu exited; pages in use: %llu; segments: %llu\n", (ull)s->threads,
        (ull)s->threads_exited, (ull)s->pages, (ull)s->segments);
    rec(k, "remote frees: %llu; failed allocs: %llu; invalid frees: %llu\n", (ull)s->remote_frees,
        (ull)s->failed_allocs, (ull)s->invalid_frees);
    rec(k, "dumps: this is dump %llu; signals received %llu, deferred %llu, merged %llu, skipped %llu\n",
        (ull)meta[0], (ull)meta[1], (ull)meta[2], (ull)meta[3], (ull)meta[4]);
    if (k->cut)
        rec_final(k, "umalloc: dump cut here: the %zu-byte buffer is full (pid %ld, dump %llu)\n", k->cap,
                  pid, (ull)meta[0]);
    else
        rec_final(k, "end of umalloc statistics (pid %ld, dump %llu)\n", pid, (ull)meta[0]);
}

/* ---- JSON ------------------------------------------------------------------------------------- */

/* Strings we print are ours (names, the version, the reason): no escaping needed. */
static void json_open_array(um_sink *k, const char *name) {
    if (rec(k, ",\"%s\":[", name)) k->closer = "]";
}
static void json_close_array(um_sink *k) {
    if (rec(k, "]")) k->closer = "";
}

static void render_json(um_sink *k, const um_stats_t *s, const char *reason, int sig,
                        const uint64_t meta[5], long pid, long long now) {
    rec(k, "{\"version\":%d,\"umalloc\":\"%s\",\"pid\":%ld,\"time\":%lld,\"reason\":\"%s\",\"signal\":%d,"
           "\"dump\":{\"seq\":%llu,\"signals\":%llu,\"deferred\":%llu,\"merged\":%llu,\"skipped\":%llu},"
           "\"threads\":%llu",
        UM_STATS_VERSION, UMALLOC_VERSION, pid, now, reason, sig, (ull)meta[0], (ull)meta[1],
        (ull)meta[2], (ull)meta[3], (ull)meta[4], (ull)s->threads);
    char req[32];
    if (s->requested_counted) umi_fmt(req, sizeof req, "%llu", (ull)s->requested_bytes);
    else umi_fmt(req, sizeof req, "null");
    rec(k, ",\"totals\":{\"mallocs\":%llu,\"frees\":%llu,\"live_blocks\":%llu,\"live_bytes\":%llu,"
           "\"peak_live_bytes\":%llu,\"usable_bytes\":%llu,\"requested_bytes\":%s,\"mapped_bytes\":%llu,"
           "\"committed_bytes\":%llu,\"free_bytes\":%llu,\"metadata_bytes\":%llu,\"purged_bytes\":%llu,"
           "\"remote_frees\":%llu,\"failed_allocs\":%llu,\"invalid_frees\":%llu,\"large_blocks\":%llu,"
           "\"large_bytes\":%llu,\"threads\":%llu,\"threads_exited\":%llu,\"pages\":%llu,\"segments\":%llu}",
        (ull)s->mallocs, (ull)s->frees, (ull)s->live_blocks, (ull)s->live_bytes, (ull)s->peak_live_bytes,
        (ull)s->usable_bytes, req, (ull)s->mapped_bytes, (ull)s->committed_bytes, (ull)s->free_bytes,
        (ull)s->metadata_bytes, (ull)s->purged_bytes, (ull)s->remote_frees, (ull)s->failed_allocs,
        (ull)s->invalid_frees, (ull)s->large_blocks, (ull)s->large_bytes, (ull)s->threads,
        (ull)s->threads_exited, (ull)s->pages, (ull)s->segments);
    rec(k, ",\"calls\":{\"%s\":%llu,\"%s\":%llu,\"%s\":%llu,\"%s\":%llu,\"%s\":%llu,\"%s\":%llu,\"%s\":%llu,\"%s\":%llu}",
        call_names[0], (ull)s->calls[0], call_names[1], (ull)s->calls[1], call_names[2], (ull)s->calls[2],
        call_names[3], (ull)s->calls[3], call_names[4], (ull)s->calls[4], call_names[5], (ull)s->calls[5],
        call_names[6], (ull)s->calls[6], call_names[7], (ull)s->calls[7]);
    rec(k, ",\"page_sizes\":{\"%s\":%llu,\"%s\":%llu,\"%s\":%llu,\"%s\":%llu}", page_names[0],
        (ull)s->page_kind_mapped_bytes[0], page_names[1], (ull)s->page_kind_mapped_bytes[1], page_names[2],
        (ull)s->page_kind_mapped_bytes[2], page_names[3], (ull)s->page_kind_mapped_bytes[3]);
    rec(k, ",\"hugepage_fallbacks\":%llu,\"locked_bytes\":%llu", (ull)s->hugepage_fallbacks, (ull)s->locked_bytes);
    unsigned nodes = s->node_count > UM_STATS_NODES ? UM_STATS_NODES : s->node_count;
    json_open_array(k, "nodes");
    for (unsigned n = 0; n < nodes; n++)
        rec(k, "%s{\"node\":%u,\"mapped_bytes\":%llu,\"committed_bytes\":%llu,\"live_bytes\":%llu,\"migrated_pages\":%llu}",
            n ? "," : "", n, (ull)s->node_mapped_bytes[n], (ull)s->node_committed_bytes[n], (ull)s->node_live_bytes[n],
            (ull)s->node_migrated_pages[n]);
    json_close_array(k);
    json_open_array(k, "size_classes");
    int first = 1;
    for (int c = 1; c < UM_STATS_CLASSES; c++) {
        const um_stats_class_t *cl = &s->classes[c];
        if (cl->mallocs == 0) continue;
        rec(k, "%s{\"class\":%d,\"size\":%zu,\"mallocs\":%llu,\"frees\":%llu,\"live_blocks\":%llu,\"live_bytes\":%llu}",
            first ? "" : ",", c, cl->size, (ull)cl->mallocs, (ull)cl->frees, (ull)cl->live_blocks,
            (ull)cl->live_bytes);
        first = 0;
    }
    json_close_array(k);
    if (k->cut) rec_final(k, "%s,\"truncated\":true}\n", k->closer);
    else rec_final(k, ",\"truncated\":false}\n");
}

/* ---- entry points ------------------------------------------------------------------------------ */

/* Format s into buf (cap bytes; at least 1 KiB). fd < 0: the dump is built in buf (cut if it
 * does not fit) and its length returned (at most cap - 1; no NUL is written). fd >= 0: buf is a staging area, written to fd whenever
 * it fills and at the end; returns the bytes written, and sets *failed if a write failed.
 * reason: "signal", "deferred", "exit", "api", "request"; sig: the signal, or 0. */
size_t umi_stats_render(char *buf, size_t cap, int fd, const um_stats_t *s, int format,
                       const char *reason, int sig, const uint64_t meta[5], int *failed) {
    if (buf == NULL || cap < 2) return 0;
    /* Buffer mode leaves room for a NUL (the caller may want a string). */
    um_sink k = {buf, fd >= 0 ? cap : cap - 1, 0, fd, 0, 0, "", 0};
    struct timespec ts = {0, 0};
    clock_gettime(CLOCK_REALTIME, &ts);
    long pid = (long)getpid();
    if (format == UM_STATS_JSON) render_json(&k, s, reason, sig, meta, pid, (long long)ts.tv_sec);
    else render_text(&k, s, reason, sig, meta, pid, (long long)ts.tv_sec);
    if (fd >= 0) {
        sink_flush(&k);
        if (failed) *failed = k.failed;
        return (size_t)k.written;
    }
    if (failed) *failed = 0;
    return k.len;
}

/* um_stats_print's buffer: taken with a flag; a second caller (another thread, or a signal
 * handler calling us while we print) streams through its stack instead. */
#define UM_PRINT_BUF (64 * 1024)
UM_BIG_BSS static char print_buf[UM_PRINT_BUF];
UM_BIG_BSS static um_stats_t print_snap;
static atomic_int print_busy; /* 0, or the pid of the process printing (a child forked meanwhile takes it over) */

static __attribute__((noinline)) int print_on_stack(int fd, int format) {
    um_stats_t s;
    char buf[4096];
    uint64_t meta[5];
    int failed = 0;
    if (umi_stats_snapshot(&s, 1) < 0) {
        errno = EAGAIN;
        return -1;
    }
    umi_stats_dump_meta(meta, 1);
    umi_stats_render(buf, sizeof buf, fd, &s, format, "api", 0, meta, &failed);
    if (failed) errno = EIO;
    return failed ? -1 : 0;
}

UM_API int um_stats_print(int fd, int format) {
    if (fd < 0 || (format != UM_STATS_TEXT && format != UM_STATS_JSON)) {
        errno = fd < 0 ? EBADF : EINVAL;
        return -1;
    }
    int saved = errno;
    int me = (int)getpid(), cur = 0;
    if (!atomic_compare_exchange_strong(&print_busy, &cur, me) &&
        (cur == me || !atomic_compare_exchange_strong(&print_busy, &cur, me))) {
        int r = print_on_stack(fd, format);
        if (r == 0) errno = saved;
        return r;
    }
    uint64_t meta[5];
    /* in_signal = 1: if a signal handler of the program calls us while its thread holds an
     * umalloc lock, the snapshot says so instead of deadlocking. Elsewhere it is never refused. */
    int r = umi_stats_snapshot(&print_snap, 1);
    if (r == 0) {
        umi_stats_dump_meta(meta, 1);
        size_t n = umi_stats_render(print_buf, sizeof print_buf, -1, &print_snap, format, "api", 0, meta, NULL);
        r = umi_write_all(fd, print_buf, n);
        if (r != 0) errno = EIO; /* umi_write_all keeps errno: the write's own reason is lost */
    } else {
        errno = EAGAIN;
    }
    int e = errno;
    atomic_store_explicit(&print_busy, 0, memory_order_release);
    errno = r == 0 ? saved : e;
    return r;
}
