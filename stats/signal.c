/* Statistics dumps that happen by themselves: on a signal (UMALLOC_STATS_SIGNAL), at exit
 * (UMALLOC_STATS_AT_EXIT), and deferred ones; where they go (UMALLOC_STATS_FILE, stderr, or the
 * file scripts/umalloc-stat asks for); and umi_stats_init. See docs/stats.md, "Signals".
 *
 * The signal handler is async-signal-safe: no malloc, no stdio, no lock the interrupted thread
 * could hold. It asks umi_stats_snapshot(.., in_signal = 1) for the numbers; if the interrupted
 * thread holds an umalloc lock, the snapshot refuses (-1) and the dump is deferred: the handler
 * asks the core's safe point for it (UM_SAFE_DUMP), which the next allocation slow path that
 * holds no lock runs (core/counters.h), or the at-exit destructor. The dump is formatted into a
 * static buffer and written with one write(2).
 *
 * One dump at a time: a flag (dump_busy) guards the static snapshot and buffer. A thread that
 * finds it taken by another thread takes its snapshot on its own stack, then waits (bounded) for
 * the flag (a dump that waited in vain, UM_DUMP_WAIT_MS, is skipped and counted). A signal that
 * arrives while its thread is itself in a dump outside the handler (a deferred one, the at-exit
 * one) is deferred: it needs a newer snapshot than the one being written. Every
 * dump shows these counts. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/fmt.h"
#include "base/io.h"
#include "base/options.h"
#include "stats/stats.h"
#include "umalloc.h"

extern _Atomic int umi_initialized; /* core/init.c */

/* stats/dump.c */
size_t umi_stats_render(char *buf, size_t cap, int fd, const um_stats_t *s, int format,
                       const char *reason, int sig, const uint64_t meta[5], int *failed);
void umi_stats_dump_meta(uint64_t meta[5], int take_seq);

#define UM_DUMP_BUF (64 * 1024) /* a dump is ~3-20 KiB; larger ones are cut, saying so */
#define UM_DUMP_WAIT_MS 2000    /* how long a dump waits for another thread's dump to finish */

UM_BIG_BSS static char dump_buf[UM_DUMP_BUF];
UM_BIG_BSS static um_stats_t dump_snap;
UM_BIG_BSS static char dump_path[UM_OPTION_TEXT_MAX + 64]; /* UMALLOC_STATS_FILE with %p expanded */
UM_BIG_BSS static char req_text[PATH_MAX + 2];             /* the request file's contents */
static atomic_int dump_busy; /* guards the four above: 0, or the pid of the process dumping */
static __thread int tl_in_dump;                 /* this thread is in a dump (or our handler) */

/* Bookkeeping shown in every dump. */
static _Atomic uint64_t n_seq, n_signals, n_deferred, n_merged, n_skipped;
static atomic_uint n_pending;      /* deferred dumps asked for and not yet made */
static atomic_int file_error_pid;  /* the process that already said the file is unwritable */
static int installed_signal;       /* the signal our handler is installed for, or 0 */

enum { WHY_SIGNAL, WHY_DEFERRED, WHY_EXIT };
static const char *const why_names[] = {"signal", "deferred", "exit"};

void umi_stats_dump_meta(uint64_t meta[5], int take_seq) {
    meta[0] = take_seq ? atomic_fetch_add(&n_seq, 1) + 1 : atomic_load(&n_seq);
    meta[1] = atomic_load(&n_signals);
    meta[2] = atomic_load(&n_deferred);
    meta[3] = atomic_load(&n_merged);
    meta[4] = atomic_load(&n_skipped);
}

/* ---- errno as text (strerror is not async-signal-safe) ----------------------------------------- */

static const char *err_text(int e, char *buf, size_t cap) {
    switch (e) {
    case ENOENT: return "No such file or directory";
    case EACCES: return "Permission denied";
    case EPERM: return "Operation not permitted";
    case EROFS: return "Read-only file system";
    case EISDIR: return "Is a directory";
    case ENOTDIR: return "Not a directory";
    case ENOSPC: return "No space left on device";
    case EDQUOT: return "Disk quota exceeded";
    case EFBIG: return "File too large";
    case ENAMETOOLONG: return "File name too long";
    case ELOOP: return "Too many levels of symbolic links";
    case EMFILE: return "Too many open files";
    case ENFILE: return "Too many open files in system";
    case ENXIO: return "No such device or address";
    case ENODEV: return "No such device";
    case ETXTBSY: return "Text file busy";
    case EINVAL: return "Invalid argument";
    case EIO: return "Input/output error";
    case EAGAIN: return "Resource temporarily unavailable";
    case EINTR: return "Interrupted system call";
    case EBADF: return "Bad file descriptor";
    case EPIPE: return "Broken pipe";
    case ENOMEM: return "Cannot allocate memory";
    case EFAULT: return "Bad address";
    case EEXIST: return "File exists";
    case EOVERFLOW: return "Value too large for defined data type";
    case EBUSY: return "Device or resource busy";
    default: umi_fmt(buf, cap, "error %d", e); return buf;
    }
}

/* ---- destinations ------------------------------------------------------------------------------ */

/* Open for appending, without blocking on a FIFO nobody reads; writes then block as usual.
 * Never through a symbolic link (O_NOFOLLOW): the path is often in a shared directory such as
 * /tmp, where another user could plant a link to a file of ours and have the dump overwrite
 * it. A file we create is ours alone (0600): a dump shows the program's allocation pattern. */
static int open_append(const char *path, int create) {
    int flags = O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW | (create ? O_CREAT : 0);
    int fd = umi_io_open(path, flags, 0600);
    if (fd >= 0) {
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    }
    return fd;
}

/* The UMALLOC_STATS_FILE path for this process: %p is the pid (now: a forked child gets its own
 * file), %% a '%'. Returns dump_path, or NULL for stderr. */
static const char *dest_path(void) {
    const char *f = umi_option_str(UM_OPT_STATS_FILE);
    if (f == NULL || f[0] == '\0') return NULL;
    size_t o = 0, cap = sizeof dump_path;
    for (const char *c = f; *c && o + 1 < cap; c++) {
        if (c[0] == '%' && c[1] == 'p') {
            o += umi_fmt(dump_path + o, cap - o, "%ld", (long)getpid());
            c++;
        } else if (c[0] == '%' && c[1] == '%') {
            dump_path[o++] = '%';
            c++;
        } else {
            dump_path[o++] = *c;
        }
    }
    dump_path[o] = '\0';
    return dump_path;
}

/* One line on stderr, once per process (a forked child says it again: its file differs). */
static void file_error(const char *what, const char *path, int e) {
    int me = (int)getpid();
    if (atomic_exchange(&file_error_pid, me) == me) return;
    char eb[32];
    if (e == ELOOP) { /* O_NOFOLLOW's answer: say what it means */
        umi_dprintf(2, "umalloc: UMALLOC_STATS_FILE=%.400s: %.400s is a symbolic link, refused; the statistics go to stderr instead\n",
                   umi_option_str(UM_OPT_STATS_FILE), path);
        return;
    }
    umi_dprintf(2, "umalloc: UMALLOC_STATS_FILE=%.400s: cannot %s %.400s (%s); the statistics go to stderr instead\n",
               umi_option_str(UM_OPT_STATS_FILE), what, path, err_text(e, eb, sizeof eb));
}

/* The file scripts/umalloc-stat asks for: /tmp/umalloc-stat.PID.req holds the absolute path of
 * an output file the script made. Honoured only if the request is a regular file owned by our
 * real uid (or root) and not writable by others, and the output is a regular file owned by the
 * same user; the request is removed once read. Returns the output's fd, or -1. */
static int take_request(void) {
    char req[64];
    umi_fmt(req, sizeof req, "/tmp/umalloc-stat.%ld.req", (long)getpid());
    int fd = umi_io_open(req, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, 0);
    if (fd < 0) return -1;
    struct stat st;
    uid_t me = getuid();
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_uid != me && st.st_uid != 0) ||
        (st.st_mode & 022) != 0) {
        umi_io_close(fd);
        return -1;
    }
    ssize_t n;
    do n = umi_io_read(fd, req_text, sizeof req_text - 1);
    while (n < 0 && errno == EINTR);
    umi_io_close(fd);
    unlink(req);
    if (n <= 0) return -1;
    while (n > 0 && (req_text[n - 1] == '\n' || req_text[n - 1] == '\r' || req_text[n - 1] == ' ')) n--;
    req_text[n] = '\0';
    if (n == 0 || req_text[0] != '/' || memchr(req_text, '\0', (size_t)n) != NULL) return -1;
    int out = open_append(req_text, 0);
    if (out < 0) return -1;
    struct stat ost;
    if (fstat(out, &ost) != 0 || !S_ISREG(ost.st_mode) || ost.st_uid != st.st_uid) {
        umi_io_close(out);
        return -1;
    }
    return out;
}

/* ---- one dump ----------------------------------------------------------------------------------- */

/* Write the dump of s. The caller holds dump_busy. */
static void emit(const um_stats_t *s, int why, int sig) {
    uint64_t meta[5];
    int err_fd = 2;
    if (why != WHY_EXIT) {
        int out = take_request();
        if (out >= 0) {
            umi_stats_dump_meta(meta, 1);
            size_t n = umi_stats_render(dump_buf, sizeof dump_buf, -1, s, UM_STATS_JSON, "request", sig, meta, NULL);
            umi_write_all(out, dump_buf, n);
            umi_io_close(out);
            return;
        }
    }
    int format = umi_option(UM_OPT_STATS_FORMAT) == UM_STATS_FORMAT_JSON ? UM_STATS_JSON : UM_STATS_TEXT;
    umi_stats_dump_meta(meta, 1);
    size_t n = umi_stats_render(dump_buf, sizeof dump_buf, -1, s, format, why_names[why], sig, meta, NULL);
    const char *path = dest_path();
    if (path == NULL) {
        umi_write_all(err_fd, dump_buf, n);
        return;
    }
    int fd = open_append(path, 1);
    if (fd < 0) {
        file_error("open", path, errno);
        umi_write_all(err_fd, dump_buf, n);
        return;
    }
    /* umi_write_all keeps errno; a failed write is rare enough to ask again for the reason. */
    if (umi_write_all(fd, dump_buf, n) != 0) {
        ssize_t w = umi_io_write(fd, "", 0);
        file_error("write", path, w < 0 ? errno : EIO);
        umi_write_all(err_fd, dump_buf, n);
    }
    umi_io_close(fd);
}

static void defer_dump(void) {
    atomic_fetch_add(&n_deferred, 1);
    atomic_fetch_add(&n_pending, 1);
    umi_safe_point_request(UM_SAFE_DUMP);
}

static int ms_since(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int)((t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000);
}

/* Take dump_busy if free. It holds the pid of the dumping process, so that a child forked while
 * a thread of its parent was dumping (that thread does not exist in the child) takes it over. */
static int try_busy(void) {
    int me = (int)getpid(), cur = 0;
    if (atomic_compare_exchange_strong_explicit(&dump_busy, &cur, me, memory_order_acquire, memory_order_relaxed))
        return 1;
    return cur != me && atomic_compare_exchange_strong_explicit(&dump_busy, &cur, me, memory_order_acquire,
                                                                memory_order_relaxed);
}

/* Wait (bounded) for another thread's dump to end. Returns 1 with dump_busy taken. */
static int wait_busy(void) {
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned i = 0;; i++) {
        if (try_busy()) return 1;
        if (i < 100) {
            __builtin_ia32_pause();
            continue;
        }
        if (ms_since(&t0) > UM_DUMP_WAIT_MS) return 0;
        struct timespec nap = {0, 50000};
        umi_io_nanosleep(&nap);
    }
}

static void release_busy(void) { atomic_store_explicit(&dump_busy, 0, memory_order_release); }

/* Pending deferred dumps are satisfied by a dump whose snapshot starts now. */
static unsigned take_pending(void) { return atomic_exchange(&n_pending, 0); }
static void give_back_pending(unsigned n) {
    if (n) atomic_fetch_add(&n_pending, n);
}

/* The other thread's dump is running: snapshot on our stack, then wait for the buffer. */
static __attribute__((noinline)) void dump_when_busy(int why, int sig, int in_signal, unsigned merged) {
    um_stats_t s;
    if (umi_stats_snapshot(&s, in_signal) < 0) {
        give_back_pending(merged);
        defer_dump();
        return;
    }
    if (!wait_busy()) {
        give_back_pending(merged);
        atomic_fetch_add(&n_skipped, 1);
        return;
    }
    atomic_fetch_add(&n_merged, merged);
    emit(&s, why, sig);
    release_busy();
}

/* A dump; the caller has set tl_in_dump. merged: deferred requests this dump also answers. */
static void dump(int why, int sig, int in_signal) {
    unsigned merged = take_pending();
    if (why == WHY_DEFERRED) {
        if (merged == 0) return; /* another dump answered it meanwhile */
        merged--;                /* the one this dump is for */
    }
    if (!try_busy()) {
        dump_when_busy(why, sig, in_signal, merged);
        return;
    }
    if (umi_stats_snapshot(&dump_snap, in_signal) < 0) {
        release_busy();
        give_back_pending(merged + (why == WHY_DEFERRED));
        if (why == WHY_DEFERRED) umi_safe_point_request(UM_SAFE_DUMP); /* try again later */
        else defer_dump();
        return;
    }
    atomic_fetch_add(&n_merged, merged);
    emit(&dump_snap, why, sig);
    release_busy();
}

/* ---- the handler, deferred dumps, exit --------------------------------------------------------- */

static void on_signal(int sig, siginfo_t *info, void *ctx) {
    (void)info;
    (void)ctx;
    int saved = errno;
    atomic_fetch_add(&n_signals, 1);
    if (tl_in_dump) {
        /* This thread is in the middle of a dump (a deferred one, or the at-exit one) whose
         * snapshot is older than this signal: ask for another, made when the dump under
         * way ends (or at the next lock release). */
        defer_dump();
    } else {
        tl_in_dump = 1;
        dump(WHY_SIGNAL, sig, 1);
        tl_in_dump = 0;
    }
    errno = saved;
}

/* Deferred dumps still owed, made now (a few at most: signals keep coming under a flood). */
static void run_pending(void) {
    for (int i = 0; i < 4 && atomic_load(&n_pending); i++) dump(WHY_DEFERRED, 0, 1);
}

/* Deferred dumps, at the core's safe point (the caller holds no lock). */
static void run_deferred(void) {
    if (tl_in_dump) {
        /* A safe point inside our own dump (the snapshot's): the dump under way is older than
         * the request, so ask again; the next safe point anywhere makes it. */
        if (atomic_load(&n_pending)) umi_safe_point_request(UM_SAFE_DUMP);
        return;
    }
    if (atomic_load(&n_pending) == 0) return;
    int saved = errno;
    tl_in_dump = 1;
    run_pending();
    tl_in_dump = 0;
    errno = saved;
}

/* A peak sample: a snapshot raises the peak of live bytes (stats/stats.h); the numbers are not
 * kept. A snapshot is 5 KiB: too much for the stack of a thread that may have a small one. */
static void sample_peak(void) {
    UM_BIG_BSS static um_stats_t sample;
    static _Atomic int sampling;
    if (atomic_exchange_explicit(&sampling, 1, memory_order_acquire)) return; /* another thread samples */
    umi_stats_snapshot(&sample, 0);
    atomic_store_explicit(&sampling, 0, memory_order_release);
}

static void safe_point_work(unsigned what) {
    if (what & UM_SAFE_SAMPLE) sample_peak();
    if (what & UM_SAFE_DUMP) run_deferred();
}

/* At exit (and, in a static program, at the end of main): a deferred dump still owed, then the
 * UMALLOC_STATS_AT_EXIT dump. A destructor, not atexit: registering with atexit may allocate. It
 * runs after the program's own destructors and atexit handlers (the preloaded library is
 * finalised after the program), so their frees are counted. */
__attribute__((destructor)) static void stats_at_exit(void) {
    if (!atomic_load_explicit(&umi_initialized, memory_order_acquire)) return; /* never allocated */
    if (tl_in_dump) return;
    int saved = errno;
    tl_in_dump = 1;
    run_pending();
    if (umi_option(UM_OPT_STATS_AT_EXIT)) dump(WHY_EXIT, 0, 1);
    run_pending(); /* signals that came during the at-exit dump */
    tl_in_dump = 0;
    errno = saved;
}

/* Called once by the core, from process initialisation (options are read; possibly before libc
 * is initialised: only system calls here). */
void umi_stats_init(void) {
    umi_safe_point_register(safe_point_work);
    int sig = (int)umi_option(UM_OPT_STATS_SIGNAL);
    if (sig <= 0 || installed_signal) return;
    struct sigaction old;
    memset(&old, 0, sizeof old);
    if (sigaction(sig, NULL, &old) != 0) return;
    if ((old.sa_flags & SA_SIGINFO) ? old.sa_sigaction != NULL : old.sa_handler != SIG_DFL) {
        if (umi_option(UM_OPT_VERBOSE)) {
            char name[64];
            umi_option_format(&umi_option_table[UM_OPT_STATS_SIGNAL], sig, NULL, name, sizeof name);
            umi_dprintf(2, "umalloc: UMALLOC_STATS_SIGNAL=%s: the program already %s signal %d; umalloc leaves "
                          "it alone (no statistics dumps on this signal)\n",
                       name, (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_IGN) ? "ignores" : "handles",
                       sig);
        }
        return;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_RESTART | SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) == 0) installed_signal = sig;
}
