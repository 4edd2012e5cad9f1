/* Helpers for the system tests (test/sys_*.c, one Criterion binary build/test/system).
 *
 * They run programs (test/progs/ ones and real ones) with or without LD_PRELOAD of the umalloc
 * library, with a timeout, capturing stdout and stderr, and optionally watching which processes
 * of the run have the library mapped.
 *
 * Environment overrides:
 *   UMALLOC_TEST_ROOT     repo root (default: from /proc/self/exe = ROOT/build/test/system, else
 *                         the current directory if it holds include/umalloc.h)
 *   UMALLOC_TEST_PRELOAD  what to put in LD_PRELOAD instead of ROOT/build/libumalloc.so (e.g.
 *                         another allocator, to try the harness; um_* checks then fail)
 *   UMALLOC_TEST_MAPS     the string that marks the library in /proc/PID/maps (default: the
 *                         file name of the first UMALLOC_TEST_PRELOAD entry, else "libumalloc")
 *   UMALLOC_TEST_KEEP     if set, temp dirs are kept even when the test passes
 * Temp dirs are /tmp/umsys-TAG-XXXXXX; a test removes its dir only when it passes. */
#ifndef UMALLOC_SYS_UTIL_H
#define UMALLOC_SYS_UTIL_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SU_UNUSED __attribute__((unused))

extern char **environ;

/* ---- small things ----------------------------------------------------------------------------- */

SU_UNUSED static double su_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* malloc'd printf. */
SU_UNUSED __attribute__((format(printf, 1, 2))) static char *su_fmt(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    cr_assert_not_null(s, "out of memory in the test harness");
    return s;
}

SU_UNUSED static int su_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Whole file, NUL-terminated (len without the NUL); NULL if it can't be read. */
SU_UNUSED static char *su_read_file(const char *path, size_t *len_out) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = 0;
    if (len_out) *len_out = len;
    return buf;
}

SU_UNUSED static void su_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(data, 1, len, f), len, "short write to %s", path);
    cr_assert_eq(fclose(f), 0, "cannot write %s", path);
}
SU_UNUSED static void su_write_str(const char *path, const char *s) {
    su_write_file(path, s, strlen(s));
}

/* 1 if both files exist and are byte-identical; otherwise 0 and a reason in why. */
SU_UNUSED static int su_files_equal(const char *a, const char *b, char *why, size_t whylen) {
    size_t la, lb;
    char *da = su_read_file(a, &la), *db = su_read_file(b, &lb);
    int eq = 0;
    if (!da || !db)
        snprintf(why, whylen, "cannot read %s", !da ? a : b);
    else if (la != lb)
        snprintf(why, whylen, "%s has %zu bytes, %s has %zu", a, la, b, lb);
    else {
        size_t i = 0;
        while (i < la && da[i] == db[i]) i++;
        if (i < la)
            snprintf(why, whylen, "%s and %s differ first at byte %zu of %zu", a, b, i, la);
        else
            eq = 1;
    }
    free(da);
    free(db);
    return eq;
}

/* Count of non-overlapping occurrences of needle in hay. */
SU_UNUSED static int su_count(const char *hay, const char *needle) {
    int n = 0;
    size_t nl = strlen(needle);
    for (const char *p = hay; p && (p = strstr(p, needle)) != NULL; p += nl) n++;
    return n;
}

/* The last max bytes of s (for failure messages). */
SU_UNUSED static const char *su_tail(const char *s, size_t max) {
    if (!s) return "";
    size_t n = strlen(s);
    return n > max ? s + n - max : s;
}

/* ---- paths ------------------------------------------------------------------------------------ */

SU_UNUSED static const char *su_root(void) {
    static char root[PATH_MAX];
    if (root[0]) return root;
    const char *env = getenv("UMALLOC_TEST_ROOT");
    if (env && *env) {
        cr_assert_not_null(realpath(env, root), "UMALLOC_TEST_ROOT=%s: %s", env, strerror(errno));
        return root;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        const char *suffix = "/build/test/system";
        size_t sl = strlen(suffix);
        if ((size_t)n > sl && strcmp(exe + n - sl, suffix) == 0) {
            exe[n - sl] = 0;
            snprintf(root, sizeof root, "%s", exe);
            return root;
        }
    }
    cr_assert(su_exists("include/umalloc.h"),
              "cannot find the repo root: run build/test/system from the repo, or set "
              "UMALLOC_TEST_ROOT");
    cr_assert_not_null(getcwd(root, sizeof root), "getcwd");
    return root;
}

/* What goes into LD_PRELOAD. Fails the test if the library is not built. */
SU_UNUSED static const char *su_preload(void) {
    static char pre[PATH_MAX * 2];
    if (pre[0]) return pre;
    const char *env = getenv("UMALLOC_TEST_PRELOAD");
    if (env && *env) {
        snprintf(pre, sizeof pre, "%s", env);
        return pre;
    }
    snprintf(pre, sizeof pre, "%s/build/libumalloc.so", su_root());
    cr_assert(su_exists(pre), "%s does not exist: run `make` first", pre);
    return pre;
}

/* The string that shows the library is mapped, in /proc/PID/maps. */
SU_UNUSED static const char *su_maps_name(void) {
    static char name[256];
    if (name[0]) return name;
    const char *env = getenv("UMALLOC_TEST_MAPS");
    if (env && *env) {
        snprintf(name, sizeof name, "%s", env);
        return name;
    }
    const char *pre = getenv("UMALLOC_TEST_PRELOAD");
    if (pre && *pre) {
        char first[PATH_MAX];
        snprintf(first, sizeof first, "%s", pre);
        first[strcspn(first, " :")] = 0;
        const char *slash = strrchr(first, '/');
        snprintf(name, sizeof name, "%.200s", slash ? slash + 1 : first);
    } else {
        snprintf(name, sizeof name, "libumalloc");
    }
    return name;
}

/* build/test/progs/NAME; fails if not built. */
SU_UNUSED static char *su_prog(const char *name) {
    char *p = su_fmt("%s/build/test/progs/%s", su_root(), name);
    cr_assert(su_exists(p), "%s does not exist: run `make progs`", p);
    return p;
}

/* Full path of an executable found in PATH (or NULL). */
SU_UNUSED static char *su_which(const char *name) {
    if (strchr(name, '/')) return access(name, X_OK) == 0 ? su_fmt("%s", name) : NULL;
    const char *path = getenv("PATH");
    if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
    char *copy = su_fmt("%s", path), *save = NULL;
    for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        char *full = su_fmt("%s/%s", dir, name);
        if (access(full, X_OK) == 0) {
            free(copy);
            return full;
        }
        free(full);
    }
    free(copy);
    return NULL;
}

/* Full path of a required program, preferring the system's own copy in /usr/bin (a pyenv or
 * other shim in PATH is a script, not the program). Fails naming the Debian package. */
SU_UNUSED static char *su_need(const char *name, const char *package) {
    char *sys = su_fmt("/usr/bin/%s", name);
    if (access(sys, X_OK) == 0) return sys;
    free(sys);
    char *p = su_which(name);
    cr_assert_not_null(p,
                       "%s is not installed: apt-get install -y %s (scripts/deps.sh test installs "
                       "it)",
                       name, package);
    return p;
}

/* ---- temp dirs -------------------------------------------------------------------------------- */

SU_UNUSED static char *su_tmpdir(const char *tag) {
    char *t = su_fmt("/tmp/umsys-%s-XXXXXX", tag);
    cr_assert_not_null(mkdtemp(t), "mkdtemp(%s): %s", t, strerror(errno));
    return t;
}

SU_UNUSED static int su_rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}
/* Removes dir (only under /tmp/umsys-) unless UMALLOC_TEST_KEEP is set. Call at the end of a
 * passing test: a failing test leaves its files for inspection. */
SU_UNUSED static void su_rmtree(const char *dir) {
    if (!dir || strncmp(dir, "/tmp/umsys-", 11) != 0) return;
    if (getenv("UMALLOC_TEST_KEEP")) return;
    nftw(dir, su_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- running programs ------------------------------------------------------------------------- */

typedef struct {
    const char *const *argv; /* NULL-terminated; argv[0] is looked up in PATH if it has no '/' */
    const char *const *env;  /* extra "NAME=VALUE" entries (override), "NAME" alone to unset */
    int preload;             /* 1: LD_PRELOAD = su_preload(); 0: LD_PRELOAD removed */
    const char *cwd;         /* NULL: inherit */
    const char *stdin_path;  /* NULL: /dev/null */
    const char *stdout_path; /* NULL: captured into su_result.out */
    const char *stderr_path; /* NULL: captured into su_result.err */
    double timeout;          /* seconds, 0: 60. On expiry the whole process group is killed. */
    int watch;               /* 1: poll /proc while it runs; record which processes of the run
                                had su_maps_name() mapped */
} su_opts;

enum { SU_WATCH_MAX = 64 };
typedef struct {
    int exited, code;      /* normal exit and its status */
    int signaled, sig;     /* killed by a signal (not by our timeout) */
    int timed_out;         /* we killed it after opts.timeout */
    double secs;           /* wall time */
    double cpu;            /* user + system CPU seconds of the process and the children it
                              waited for (from wait4) */
    char *out, *err;       /* captured output (empty string if redirected to a file) */
    size_t out_len, err_len;
    /* with watch: "comm" names of processes seen, and which of them had the library mapped */
    int nseen;
    char seen[SU_WATCH_MAX][20];
    int mapped[SU_WATCH_MAX];
} su_result;

typedef struct {
    pid_t pid;
    double start, timeout;
    char out_tmp[64], err_tmp[64];
    int watch;
} su_proc;

/* The child's environment: ours, minus LD_PRELOAD and overridden/unset names, plus extras. */
SU_UNUSED static char **su_build_env(const su_opts *o) {
    size_t n = 0, extra = 0;
    while (environ[n]) n++;
    if (o->env)
        while (o->env[extra]) extra++;
    char **env = calloc(n + extra + 2, sizeof *env);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *e = environ[i];
        size_t nl = strcspn(e, "=");
        /* LD_PRELOAD is set (or not) below; UMALLOC_TEST_* are the harness's own settings
         * (umalloc itself warns about UMALLOC_* names it does not know). */
        int drop = (nl == 10 && strncmp(e, "LD_PRELOAD", 10) == 0) ||
                   strncmp(e, "UMALLOC_TEST_", 13) == 0;
        for (size_t j = 0; !drop && j < extra; j++) {
            size_t xl = strcspn(o->env[j], "=");
            drop = xl == nl && strncmp(e, o->env[j], nl) == 0;
        }
        if (!drop) env[k++] = (char *)e;
    }
    for (size_t j = 0; j < extra; j++)
        if (strchr(o->env[j], '=')) env[k++] = (char *)o->env[j];
    if (o->preload) env[k++] = su_fmt("LD_PRELOAD=%s", su_preload());
    env[k] = NULL;
    return env;
}

SU_UNUSED static void su_redirect(int fd, const char *path, int flags) {
    int f = open(path, flags, 0644);
    if (f < 0) {
        dprintf(2, "su_spawn: cannot open %s: %s\n", path, strerror(errno));
        _exit(126);
    }
    if (f != fd) {
        dup2(f, fd);
        close(f);
    }
}

/* Starts the program in its own process group. Fails the test if it can't fork. */
SU_UNUSED static su_proc su_spawn(const su_opts *o) {
    su_proc p;
    memset(&p, 0, sizeof p);
    p.timeout = o->timeout > 0 ? o->timeout : 60;
    p.watch = o->watch;
    if (!o->stdout_path) {
        snprintf(p.out_tmp, sizeof p.out_tmp, "/tmp/umsys-out-XXXXXX");
        int fd = mkstemp(p.out_tmp);
        cr_assert(fd >= 0, "mkstemp: %s", strerror(errno));
        close(fd);
    }
    if (!o->stderr_path) {
        snprintf(p.err_tmp, sizeof p.err_tmp, "/tmp/umsys-err-XXXXXX");
        int fd = mkstemp(p.err_tmp);
        cr_assert(fd >= 0, "mkstemp: %s", strerror(errno));
        close(fd);
    }
    /* Everything that allocates happens before fork. */
    char **env = su_build_env(o);
    char *exe = strchr(o->argv[0], '/') ? su_fmt("%s", o->argv[0]) : su_which(o->argv[0]);
    cr_assert_not_null(exe, "%s: not found in PATH", o->argv[0]);
    const char *out = o->stdout_path ? o->stdout_path : p.out_tmp;
    const char *err = o->stderr_path ? o->stderr_path : p.err_tmp;
    const char *in = o->stdin_path ? o->stdin_path : "/dev/null";
    fflush(stdout);
    fflush(stderr);
    p.start = su_now();
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        setpgid(0, 0);
        /* If the test process dies (Criterion timeout, crash), take the program along. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(125);
        signal(SIGPIPE, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (o->cwd && chdir(o->cwd) != 0) {
            dprintf(2, "su_spawn: chdir %s: %s\n", o->cwd, strerror(errno));
            _exit(126);
        }
        su_redirect(0, in, O_RDONLY);
        su_redirect(1, out, O_WRONLY | O_CREAT | O_TRUNC);
        su_redirect(2, err, O_WRONLY | O_CREAT | O_TRUNC);
        for (int fd = 3; fd < 1024; fd++) close(fd); /* no Criterion pipes in the children */
        execve(exe, (char *const *)o->argv, env);
        dprintf(2, "su_spawn: exec %s: %s\n", exe, strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* also from this side, so kill(-pid) works at once */
    free(exe);
    for (size_t i = 0; env[i]; i++)
        if (strncmp(env[i], "LD_PRELOAD=", 11) == 0) free(env[i]);
    free(env);
    p.pid = pid;
    return p;
}

/* One look at /proc: the processes of p's group, and whether each maps the library. */
SU_UNUSED static void su_watch_once(const su_proc *p, su_result *r) {
    DIR *d = opendir("/proc");
    if (!d) return;
    const char *lib = su_maps_name();
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9') continue;
        char path[300], buf[1024];
        snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0) continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0) continue;
        buf[n] = 0;
        char *rp = strrchr(buf, ')');
        char *lp = strchr(buf, '(');
        if (!rp || !lp) continue;
        int ppid = 0, pgrp = 0;
        char state;
        if (sscanf(rp + 2, "%c %d %d", &state, &ppid, &pgrp) != 3 || pgrp != p->pid) continue;
        if (state == 'Z') continue;
        char comm[20] = {0};
        size_t cl = (size_t)(rp - lp - 1);
        if (cl >= sizeof comm) cl = sizeof comm - 1;
        memcpy(comm, lp + 1, cl);
        int idx = -1;
        for (int i = 0; i < r->nseen; i++)
            if (strcmp(r->seen[i], comm) == 0) idx = i;
        if (idx >= 0 && r->mapped[idx]) continue; /* already known to map it */
        snprintf(path, sizeof path, "/proc/%s/maps", de->d_name);
        size_t ml;
        char *maps = su_read_file(path, &ml);
        if (!maps) continue;
        int has = strstr(maps, lib) != NULL;
        free(maps);
        if (idx < 0 && r->nseen < SU_WATCH_MAX) {
            idx = r->nseen++;
            snprintf(r->seen[idx], sizeof r->seen[idx], "%s", comm);
        }
        if (idx >= 0 && has) r->mapped[idx] = 1;
    }
    closedir(d);
}

/* Waits for the process (killing its group on timeout) and fills r (frees nothing of r first). */
SU_UNUSED static void su_wait(su_proc *p, su_result *r) {
    memset(r, 0, sizeof *r);
    int st = 0;
    double sleep_s = 0.002;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    for (;;) {
        pid_t w = wait4(p->pid, &st, WNOHANG, &ru);
        if (w == p->pid) break;
        if (w < 0 && errno != EINTR) {
            st = 0;
            break;
        }
        if (su_now() - p->start > p->timeout) {
            kill(-p->pid, SIGKILL);
            kill(p->pid, SIGKILL);
            wait4(p->pid, &st, 0, &ru);
            r->timed_out = 1;
            break;
        }
        if (p->watch) su_watch_once(p, r);
        struct timespec ts = {0, (long)(sleep_s * 1e9)};
        nanosleep(&ts, NULL);
        /* Watching: every 2 ms in the first second (short-lived processes), then every 15 ms
         * (a scan of /proc costs about a millisecond). Otherwise back off to 50 ms. */
        if (p->watch)
            sleep_s = su_now() - p->start < 1.0 ? 0.002 : 0.015;
        else if (sleep_s < 0.05)
            sleep_s *= 1.5;
    }
    r->secs = su_now() - p->start;
    r->cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
             (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    if (!r->timed_out) {
        if (WIFEXITED(st)) {
            r->exited = 1;
            r->code = WEXITSTATUS(st);
        } else if (WIFSIGNALED(st)) {
            r->signaled = 1;
            r->sig = WTERMSIG(st);
        }
    }
    /* Leftovers of the group (daemons, stuck grandchildren) go too. */
    kill(-p->pid, SIGKILL);
    if (p->out_tmp[0]) {
        r->out = su_read_file(p->out_tmp, &r->out_len);
        unlink(p->out_tmp);
    }
    if (p->err_tmp[0]) {
        r->err = su_read_file(p->err_tmp, &r->err_len);
        unlink(p->err_tmp);
    }
    if (!r->out) r->out = su_fmt("%s", "");
    if (!r->err) r->err = su_fmt("%s", "");
}

SU_UNUSED static void su_run(const su_opts *o, su_result *r) {
    su_proc p = su_spawn(o);
    su_wait(&p, r);
}

SU_UNUSED static void su_result_free(su_result *r) {
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

SU_UNUSED static int su_ok(const su_result *r) { return r->exited && r->code == 0; }

/* "exit 0", "exit 3", "killed by signal 11 (Segmentation fault)", "timed out after 60 s". */
SU_UNUSED static const char *su_status(const su_result *r) {
    static __thread char buf[128];
    if (r->timed_out)
        snprintf(buf, sizeof buf, "timed out after %.0f s and was killed", r->secs);
    else if (r->signaled)
        snprintf(buf, sizeof buf, "killed by signal %d (%s)%s", r->sig, strsignal(r->sig),
                 r->sig == SIGSEGV || r->sig == SIGABRT || r->sig == SIGBUS ? ": crashed" : "");
    else if (r->exited)
        snprintf(buf, sizeof buf, "exit status %d", r->code);
    else
        snprintf(buf, sizeof buf, "unknown wait status");
    return buf;
}

/* 1 if a process whose comm starts with name was seen with the library mapped. */
SU_UNUSED static int su_watched_mapped(const su_result *r, const char *name) {
    for (int i = 0; i < r->nseen; i++)
        if (strncmp(r->seen[i], name, strlen(name)) == 0 && r->mapped[i]) return 1;
    return 0;
}

/* "python3(mapped) sh(-)" for messages. */
SU_UNUSED static const char *su_watched_str(const su_result *r) {
    static __thread char buf[SU_WATCH_MAX * 28];
    buf[0] = 0;
    size_t off = 0;
    for (int i = 0; i < r->nseen && off < sizeof buf - 30; i++)
        off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%s(%s)", i ? " " : "",
                                r->seen[i], r->mapped[i] ? "mapped" : "-");
    if (!r->nseen) snprintf(buf, sizeof buf, "(no process seen)");
    return buf;
}

/* umalloc's messages start with "umalloc: " (ld.so's complaints about a missing library name
 * libumalloc.so, and must not count as umalloc's). Returns the first such line or NULL. */
SU_UNUSED static const char *su_umalloc_message(const char *err) {
    for (const char *l = err; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        const char *m = strstr(l, "umalloc: ");
        const char *eol = strchr(l, '\n');
        if (m && (!eol || m < eol)) return l;
    }
    return NULL;
}

/* Assert helper: the run exited 0. who: label for messages. */
#define SU_ASSERT_OK(r, who)                                                                      \
    cr_assert(su_ok(r), "%s: %s after %.1f s\n--- stderr (tail) ---\n%s\n--- stdout (tail) ---\n%s", \
              (who), su_status(r), (r)->secs, su_tail((r)->err, 3000), su_tail((r)->out, 1500))

#endif /* UMALLOC_SYS_UTIL_H */
