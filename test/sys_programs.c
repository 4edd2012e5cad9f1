/* System tests, part A: real programs under LD_PRELOAD=libumalloc.so.
 *
 * Each workload is written into a temp dir (/tmp/umsys-NAME-XXXXXX, removed when the test
 * passes), run once without umalloc and once with it, and the two runs must agree: exit status,
 * stdout and the files produced. The preloaded run is watched (/proc polled while it runs) to
 * prove the program that did the work had the library mapped, and where the program offers a
 * cheap way, umalloc is asked directly (python: um_owns on live objects; sqlite3 and git: a
 * shell escape greps the parent's /proc/PID/maps). redis-server runs preloaded under
 * redis-benchmark and must answer correctly and shut down cleanly.
 * A missing program fails the test with the Debian package to install (scripts/deps.sh test). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include "sys_util.h"

/* ---- shared --------------------------------------------------------------------------------- */

/* The two runs of one workload. cwd_plain/cwd_pre may be the same dir. */
typedef struct {
    const char *label;
    const char *const *argv_plain, *const *argv_pre; /* argv_pre NULL: same as argv_plain */
    const char *const *env;
    const char *cwd_plain, *cwd_pre;
    const char *stdin_path;
    double timeout;
    const char *watch_for; /* comm prefix of the process that must have umalloc mapped */
} twice_t;

static void run_twice(const twice_t *t, su_result *plain, su_result *pre) {
    su_opts o = {.argv = t->argv_plain,
                 .env = t->env,
                 .preload = 0,
                 .cwd = t->cwd_plain,
                 .stdin_path = t->stdin_path,
                 .timeout = t->timeout};
    su_run(&o, plain);
    fprintf(stderr, "[%s] plain run: %s in %.1f s (%.1f s CPU)\n", t->label, su_status(plain),
            plain->secs, plain->cpu);
    cr_assert(su_ok(plain),
              "%s fails WITHOUT umalloc too (%s): the workload or the environment is broken, not "
              "the allocator\n--- stderr ---\n%s\n--- stdout ---\n%s",
              t->label, su_status(plain), su_tail(plain->err, 3000), su_tail(plain->out, 1000));

    o.argv = t->argv_pre ? t->argv_pre : t->argv_plain;
    o.cwd = t->cwd_pre;
    o.preload = 1;
    o.watch = 1;
    su_run(&o, pre);
    fprintf(stderr, "[%s] preloaded run: %s in %.1f s (%.1f s CPU); processes seen: %s\n",
            t->label, su_status(pre), pre->secs, pre->cpu, su_watched_str(pre));
    char who[256];
    snprintf(who, sizeof who, "%s under LD_PRELOAD=%s", t->label, su_preload());
    SU_ASSERT_OK(pre, who);
    cr_assert(su_umalloc_message(pre->err) == NULL, "%s: umalloc complained on stderr:\n%s", who,
              su_tail(pre->err, 3000));
    if (t->watch_for)
        cr_assert(su_watched_mapped(pre, t->watch_for),
                  "%s: no '%s' process was seen with %s in its /proc/PID/maps (seen: %s)", who,
                  t->watch_for, su_maps_name(), su_watched_str(pre));
}

static void assert_same_output(const char *label, const su_result *plain, const su_result *pre) {
    if (plain->out_len == pre->out_len && memcmp(plain->out, pre->out, plain->out_len) == 0)
        return;
    size_t i = 0;
    while (i < plain->out_len && i < pre->out_len && plain->out[i] == pre->out[i]) i++;
    size_t from = i > 200 ? i - 200 : 0;
    cr_assert_fail("%s: stdout differs with umalloc (first at byte %zu; %zu vs %zu bytes)\n"
                   "--- without ---\n%.600s\n--- with umalloc ---\n%.600s",
                   label, i, plain->out_len, pre->out_len, plain->out + from, pre->out + from);
}

static void assert_same_file(const char *label, const char *a, const char *b) {
    char why[512];
    cr_assert(su_files_equal(a, b, why, sizeof why), "%s: produced files differ: %s", label, why);
}

static uint64_t xorshift(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void make_dir(const char *path) {
    cr_assert(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", path, strerror(errno));
}

/* ---- 1. python3 ------------------------------------------------------------------------------- */

static const char PY_WORKLOAD[] =
    "import collections, gc, hashlib, json, random, re\n"
    "random.seed(20240601)\n"
    "h = hashlib.sha256()\n"
    "def feed(*xs):\n"
    "    for x in xs:\n"
    "        h.update(repr(x).encode())\n"
    "# 1. a big dict of string keys, queries, deletes, rebuilds\n"
    "d = {}\n"
    "for i in range(120000):\n"
    "    k = 'key-%06d-%s' % (i, 'abcdefghij'[: i % 11])\n"
    "    d[k] = [i, str(i * 7), {'v': i % 97, 'w': 'x' * (i % 13)}]\n"
    "total = 0\n"
    "for k in list(d)[::3]:\n"
    "    total += d[k][0] + d[k][2]['v']\n"
    "    del d[k]\n"
    "for i in range(0, 120000, 5):\n"
    "    d['new-%d' % i] = (i, [i] * (i % 5))\n"
    "feed(len(d), total, sorted(d)[:5], sorted(d)[-5:])\n"
    "# 2. strings: split, join, replace, regex, formatting\n"
    "words = [''.join(random.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(random.randint(1, "
    "12))) for _ in range(100000)]\n"
    "text = ' '.join(words)\n"
    "parts = text.split(' ')\n"
    "counts = collections.Counter(parts)\n"
    "feed(len(text), len(parts), counts.most_common(10))\n"
    "up = text.upper().replace('A', '<a>').replace('E', '')\n"
    "feed(len(up), up[:100], up.count('<a>'))\n"
    "found = re.compile(r'\\b([a-e]+)([x-z]+)\\b').findall(text)\n"
    "feed(len(found), found[:20])\n"
    "lines = ['%08d|%s|%.3f' % (i, w, i / 7) for i, w in enumerate(words)]\n"
    "feed(hashlib.md5('\\n'.join(lines).encode()).hexdigest())\n"
    "# 3. lists: sort, comprehensions, nesting\n"
    "nums = [random.randint(-10**9, 10**9) for _ in range(200000)]\n"
    "nums.sort()\n"
    "pairs = sorted(((w, len(w)) for w in words), key=lambda p: (p[1], p[0]))\n"
    "nested = [[j for j in range(i % 40)] for i in range(40000)]\n"
    "feed(nums[:10], nums[-10:], sum(nums), pairs[:10], pairs[-10:], sum(map(len, nested)))\n"
    "# 4. JSON round trip\n"
    "blob = {'items': [{'id': i, 'name': words[i], 'tags': words[i:i + 5], 'score': i * 1.5} for "
    "i in range(30000)]}\n"
    "s = json.dumps(blob, sort_keys=True)\n"
    "back = json.loads(s)\n"
    "feed(len(s), back['items'][1234], hashlib.sha1(s.encode()).hexdigest())\n"
    "# 5. cycles for the collector, sets, bytearrays\n"
    "class Node:\n"
    "    __slots__ = ('nxt', 'val', '__weakref__')\n"
    "    def __init__(self, v):\n"
    "        self.val = v\n"
    "        self.nxt = None\n"
    "for r in range(10):\n"
    "    nodes = [Node(i) for i in range(20000)]\n"
    "    for a, b in zip(nodes, nodes[1:] + nodes[:1]):\n"
    "        a.nxt = b\n"
    "    del nodes\n"
    "feed(gc.collect() >= 0)\n"
    "st = set(words) - set(words[::2])\n"
    "fs = frozenset(w[::-1] for w in words)\n"
    "ba = bytearray()\n"
    "for w in words[:50000]:\n"
    "    ba += w.encode() * 3\n"
    "feed(len(st), len(fs), len(ba), hashlib.sha256(bytes(ba)).hexdigest())\n"
    "print('dict keys', len(d))\n"
    "print('words', len(words), 'distinct', len(counts))\n"
    "print('digest', h.hexdigest())\n";

/* Under the preload, with PYTHONMALLOC=malloc: live objects are blocks umalloc owns. */
static const char PY_OWNS[] =
    "import ctypes\n"
    "lib = ctypes.CDLL(None)\n"
    "f = lib.um_owns\n"
    "f.argtypes = [ctypes.c_void_p]\n"
    "f.restype = ctypes.c_int\n"
    "s = 'y' * 100000\n"
    "b = bytes(range(256)) * 3\n"
    "t = 'short' + str(len(s))\n"
    "print('owned', f(id(s)), f(id(b)), f(id(t)))\n";

Test(programs, python3, .timeout = 240) {
    char *py = su_need("python3", "python3");
    char *dir = su_tmpdir("python");
    char *script = su_fmt("%s/work.py", dir), *check = su_fmt("%s/owns.py", dir);
    su_write_str(script, PY_WORKLOAD);
    su_write_str(check, PY_OWNS);
    const char *env[] = {"PYTHONMALLOC=malloc", "PYTHONHASHSEED=0", "PYTHONDONTWRITEBYTECODE=1",
                         "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "LC_ALL=C.UTF-8", NULL};
    const char *argv[] = {py, "work.py", NULL};
    twice_t t = {.label = "python3 (PYTHONMALLOC=malloc) dict/list/string workload",
                 .argv_plain = argv, .env = env, .cwd_plain = dir, .cwd_pre = dir,
                 .timeout = 100, .watch_for = "python3"};
    su_result plain, pre;
    run_twice(&t, &plain, &pre);
    cr_assert(strstr(plain.out, "digest ") != NULL, "python3 workload printed no digest: %s",
              plain.out);
    assert_same_output(t.label, &plain, &pre);
    su_result_free(&plain);
    su_result_free(&pre);

    const char *argv2[] = {py, "owns.py", NULL};
    su_opts o = {.argv = argv2, .env = env, .preload = 1, .cwd = dir, .timeout = 30};
    su_result r;
    su_run(&o, &r);
    SU_ASSERT_OK(&r, "python3 um_owns check (ctypes)");
    cr_assert_str_eq(r.out, "owned 1 1 1\n",
                     "python3 objects are not umalloc blocks (um_owns(id(obj)) per object): %s",
                     r.out);
    su_result_free(&r);
    su_rmtree(dir);
}

/* Out of memory for real: under `ulimit -v` (RLIMIT_AS set before start), a Python script fills
 * memory with big buffers, then small strings, then big buffers again, each until MemoryError,
 * which it catches. Every refusal must come back as NULL (Python's MemoryError), never as a
 * crash, and the memory freed after each must be usable again: what umalloc keeps cached for
 * reuse is given back when the OS refuses (core/segment.c, umi_release_for_retry). Without
 * that, the small strings got 0.41 M instead of 0.96 M, and the second round of buffers 67
 * instead of 104 (glibc: 1.5 M and 177). */
static const char PY_OOM[] =
    "import sys\n"
    "def fill(make):\n"
    "    held = []\n"
    "    try:\n"
    "        while True:\n"
    "            held.append(make(len(held)))\n"
    "    except MemoryError:\n"
    "        n = len(held)\n"
    "        del held\n"
    "        return n\n"
    "big = fill(lambda i: bytearray(1 << 20))\n"
    "small = fill(lambda i: str(i) * 8)\n"
    "again = fill(lambda i: bytearray(1 << 20))\n"
    "print('MemoryError caught: big', big, 'small', small, 'again', again)\n"
    "sys.exit(0 if big > 50 and again > 80 and small > 600000 else 3)\n";

/* Run `script` with python3 under `ulimit -v kib`, preloaded or not, into *r; the script's
 * directory is removed. */
static void python_under_ulimit(const char *name, const char *script, int kib, int preload, su_result *r) {
    char *py = su_need("python3", "python3");
    char *dir = su_tmpdir(name);
    char *path = su_fmt("%s/%s.py", dir, name);
    su_write_str(path, script);
    char *cmd = su_fmt("ulimit -v %d && exec '%s' '%s'", kib, py, path);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    const char *env[] = {"PYTHONMALLOC=malloc", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", NULL};
    su_opts o = {.argv = argv, .env = env, .preload = preload, .timeout = 90};
    su_run(&o, r);
    su_rmtree(dir);
}

Test(programs, python3_memory_error_under_ulimit, .timeout = 120) {
    su_result r;
    python_under_ulimit("python-oom", PY_OOM, 200000, 1, &r);
    fprintf(stderr, "[python3 under ulimit -v 200000] %s: %s", su_status(&r), r.out);
    SU_ASSERT_OK(&r, "python3 filling memory under ulimit -v 200000");
    cr_assert(strstr(r.out, "MemoryError caught:") != NULL, "no MemoryError handled: %s\n%s", r.out, su_tail(r.err, 2000));
    cr_assert(su_umalloc_message(r.err) == NULL, "umalloc complained:\n%s", su_tail(r.err, 2000));
    su_result_free(&r);
}

/* The address space umalloc maps beyond what a program uses is small enough that a program
 * glibc runs under `ulimit -v` runs under umalloc too: a Python script holding 20 MB of small
 * objects, in 100 MB of address space (the interpreter's own mappings take 14). The segment map
 * was one flat table of 32 MiB of address space, and this script got MemoryError. */
static const char PY_FITS[] =
    "a = [bytearray(1000) for _ in range(20000)]\n"
    "b = [str(i) * 50 for i in range(100000)]\n"
    "print('held', len(a), len(b))\n";

Test(programs, python3_fits_under_ulimit_as_under_glibc, .timeout = 120) {
    su_result r;
    python_under_ulimit("python-fits", PY_FITS, 100000, 0, &r);
    if (!su_ok(&r)) {
        fprintf(stderr, "[python3 under ulimit -v 100000, glibc] %s\n%s", su_status(&r), su_tail(r.err, 1000));
        cr_skip("SKIPPED: this python3 does not fit in 100 MB of address space even under glibc");
    }
    su_result_free(&r);
    python_under_ulimit("python-fits", PY_FITS, 100000, 1, &r);
    fprintf(stderr, "[python3 under ulimit -v 100000, umalloc] %s: %s", su_status(&r), r.out);
    SU_ASSERT_OK(&r, "python3 holding 20 MB under ulimit -v 100000, which it does under glibc");
    cr_assert_str_eq(r.out, "held 20000 100000\n", "unexpected output: %s", r.out);
    su_result_free(&r);
}

/* ---- 2. sqlite3 ------------------------------------------------------------------------------- */

static const char SQL_WORKLOAD[] =
    "PRAGMA synchronous = OFF;\n"
    "PRAGMA journal_mode = MEMORY;\n"
    "PRAGMA cache_size = -100000;\n"
    "PRAGMA temp_store = MEMORY;\n"
    "CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER NOT NULL, s TEXT NOT NULL, v REAL NOT "
    "NULL);\n"
    "BEGIN;\n"
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000)\n"
    "INSERT INTO t SELECT x, (x * 7919) % 10007, printf('s%07d-%s', (x * 31337) % 1000003, "
    "substr('abcdefghijklmnop', 1 + x % 16)), (x % 1000) / 8.0 FROM c;\n"
    "COMMIT;\n"
    "CREATE INDEX t_k ON t(k);\n"
    "CREATE INDEX t_s ON t(s);\n"
    "SELECT count(*), sum(k), min(s), max(s), total(v) FROM t;\n"
    "SELECT k, count(*), sum(v), min(id), max(id) FROM t GROUP BY k ORDER BY count(*) DESC, k "
    "LIMIT 10;\n"
    "SELECT count(*) FROM (SELECT DISTINCT k FROM t);\n"
    "SELECT group_concat(id, ',') FROM (SELECT id FROM t WHERE k = 42 ORDER BY id LIMIT 40);\n"
    "SELECT sum(length(s)), count(*) FROM t WHERE s BETWEEN 's0500000' AND 's0600000';\n"
    "SELECT substr(s, 1, 4) AS p, count(*), avg(v) FROM t GROUP BY p ORDER BY p LIMIT 12;\n"
    "CREATE TABLE u AS SELECT k, group_concat(s, '|') AS g FROM t WHERE id % 10 = 0 GROUP BY k;\n"
    "SELECT count(*), sum(length(g)), max(length(g)) FROM u;\n"
    "SELECT a.k, count(*) FROM t AS a JOIN u AS b ON a.k = b.k WHERE a.id % 1000 = 7 GROUP BY "
    "a.k ORDER BY 2 DESC, 1 LIMIT 5;\n"
    "DELETE FROM t WHERE id % 10 = 3;\n"
    "UPDATE t SET s = upper(s) WHERE id % 7 = 1;\n"
    "SELECT count(*), sum(id), count(DISTINCT upper(s)) FROM t;\n"
    "PRAGMA quick_check;\n";

Test(programs, sqlite3, .timeout = 240) {
    char *sq = su_need("sqlite3", "sqlite3");
    char *dir = su_tmpdir("sqlite");
    char *script = su_fmt("%s/script.sql", dir);
    char *dplain = su_fmt("%s/plain", dir), *dpre = su_fmt("%s/pre", dir);
    make_dir(dplain);
    make_dir(dpre);
    su_write_str(script, SQL_WORKLOAD);
    const char *env[] = {"LC_ALL=C", "SQLITE_HISTORY", NULL};
    const char *argv[] = {sq, "db.sqlite", NULL};
    twice_t t = {.label = "sqlite3 1M-row table, indexes, aggregates", .argv_plain = argv,
                 .env = env, .cwd_plain = dplain, .cwd_pre = dpre, .stdin_path = script,
                 .timeout = 110, .watch_for = "sqlite3"};
    su_result plain, pre;
    run_twice(&t, &plain, &pre);
    cr_assert(strncmp(plain.out, "memory\n1000000|", 15) == 0 && strstr(plain.out, "\nok\n"),
              "sqlite3 workload output unexpected:\n%s", su_tail(plain.out, 2000));
    assert_same_output(t.label, &plain, &pre);
    char *db1 = su_fmt("%s/db.sqlite", dplain), *db2 = su_fmt("%s/db.sqlite", dpre);
    assert_same_file(t.label, db1, db2);
    su_result_free(&plain);
    su_result_free(&pre);

    /* sqlite3's shell escape: the sh's parent is sqlite3 itself. */
    char *cmd = su_fmt(".shell grep -c %s /proc/$PPID/maps", su_maps_name());
    const char *argv2[] = {sq, ":memory:", cmd, NULL};
    su_opts o = {.argv = argv2, .env = env, .preload = 1, .cwd = dir, .timeout = 30};
    su_result r;
    su_run(&o, &r);
    SU_ASSERT_OK(&r, "sqlite3 .shell maps check");
    cr_assert(atoi(r.out) >= 1, "sqlite3 does not have %s mapped: %s", su_maps_name(), r.out);
    su_result_free(&r);
    su_rmtree(dir);
}

/* ---- 3. git ----------------------------------------------------------------------------------- */

static const char GIT_SCRIPT[] =
    "set -u\n"
    "cd work\n"
    "git init -q -b main .\n"
    "git add -A\n"
    "git commit -q -m 'initial tree'\n"
    "find . -path ./.git -prune -o -name 'f*7.c' -print | sort | while read -r f; do\n"
    "  echo '/* changed */' >> \"$f\"; done\n"
    "git rm -q $(find d05 -name 'f*3.c' | sort)\n"
    "mkdir -p extra && for i in $(seq 1 100); do echo \"extra $i\" > extra/x$i.txt; done\n"
    "git add -A\n"
    "git commit -q -m 'second: changes, removals, additions'\n"
    "git checkout -q -b topic\n"
    "sed -i 's/int v/long v/' d07/e3/*.c\n"
    "git commit -q -am 'topic: int to long in d07/e3'\n"
    "git checkout -q main\n"
    "echo '/* main side */' >> d01/e1/f0111.c\n"
    "git commit -q -am 'main: touch d01'\n"
    "git merge -q --no-ff -m 'merge topic' topic\n"
    "git tag -a v1 -m 'tag v1'\n"
    "git gc -q --prune=now\n"
    "git repack -q -a -d -f --window=100 --depth=50\n"
    "git fsck --full --strict --no-dangling; echo \"fsck exit $?\"\n"
    "git rev-parse HEAD 'HEAD^{tree}' v1\n"
    "git log --format='%H %T %an %ad %s' --date=raw\n"
    "git ls-tree -r HEAD | sha256sum\n"
    "git log -p --stat | sha256sum\n"
    "git diff --stat HEAD~2 HEAD | tail -1\n"
    "git count-objects -v | grep -E '^(count|in-pack|packs):'\n"
    "git grep -c 'line 3 ' | wc -l\n"
    "git blame -s d01/e1/f0111.c | tail -2\n"
    "git archive --format=tar HEAD | sha256sum\n"
    "echo done\n";

/* 2000 files in 200 nested dirs: work/dDD/eE/fNNNN.c. */
static void make_git_tree(const char *base) {
    char *work = su_fmt("%s/work", base);
    make_dir(work);
    for (int d = 0; d < 20; d++)
        for (int e = 0; e < 10; e++) {
            char *dd = su_fmt("%s/d%02d", work, d);
            make_dir(dd);
            char *de = su_fmt("%s/e%d", dd, e);
            make_dir(de);
            for (int f = 0; f < 10; f++) {
                int n = d * 100 + e * 10 + f;
                char *path = su_fmt("%s/f%04d.c", de, n);
                FILE *fp = fopen(path, "w");
                cr_assert_not_null(fp, "cannot create %s", path);
                for (int l = 0; l < n % 40 + 5; l++)
                    fprintf(fp, "/* file %d line %d */ int v%d_%d = %d;\n", n, l, n, l,
                            (n * l) % 97);
                fclose(fp);
                free(path);
            }
            free(de);
            free(dd);
        }
    free(work);
}

Test(programs, git, .timeout = 240) {
    char *git = su_need("git", "git");
    free(git);
    char *sh = su_need("sh", "dash");
    char *dir = su_tmpdir("git");
    char *dplain = su_fmt("%s/plain", dir), *dpre = su_fmt("%s/pre", dir);
    make_dir(dplain);
    make_dir(dpre);
    make_git_tree(dplain);
    make_git_tree(dpre);
    char *script = su_fmt("%s/script.sh", dir);
    su_write_str(script, GIT_SCRIPT);
    char *home = su_fmt("HOME=%s", dir);
    const char *env[] = {home,
                         "GIT_CONFIG_NOSYSTEM=1",
                         "GIT_CONFIG_GLOBAL=/dev/null",
                         "GIT_AUTHOR_NAME=U Malloc",
                         "GIT_AUTHOR_EMAIL=um@example.org",
                         "GIT_COMMITTER_NAME=U Malloc",
                         "GIT_COMMITTER_EMAIL=um@example.org",
                         "GIT_AUTHOR_DATE=1700000000 +0000",
                         "GIT_COMMITTER_DATE=1700000000 +0000",
                         "GIT_CONFIG_COUNT=2",
                         "GIT_CONFIG_KEY_0=gc.autoDetach",
                         "GIT_CONFIG_VALUE_0=false",
                         "GIT_CONFIG_KEY_1=maintenance.auto",
                         "GIT_CONFIG_VALUE_1=false",
                         "GIT_DIR",
                         "GIT_WORK_TREE",
                         "GIT_INDEX_FILE",
                         "LC_ALL=C",
                         "TZ=UTC",
                         NULL};
    const char *argv[] = {sh, script, NULL};
    twice_t t = {.label = "git init/commit/merge/gc/repack/fsck of 2000 files",
                 .argv_plain = argv, .env = env, .cwd_plain = dplain, .cwd_pre = dpre,
                 .timeout = 100, .watch_for = "git"};
    su_result plain, pre;
    run_twice(&t, &plain, &pre);
    cr_assert(strncmp(plain.out, "fsck exit 0\n", 12) == 0 && strstr(plain.out, "\ndone\n"),
              "git workload without umalloc: unexpected output:\n%s\nstderr:\n%s", plain.out,
              plain.err);
    cr_assert(strncmp(pre.out, "fsck exit 0\n", 12) == 0,
              "git fsck fails under umalloc:\n%s\nstderr:\n%s", pre.out, su_tail(pre.err, 2000));
    assert_same_output(t.label, &plain, &pre); /* HEAD, tree and commit ids, hashes of logs */
    su_result_free(&plain);
    su_result_free(&pre);

    /* git's shell alias: the sh's parent is git itself. */
    char *alias = su_fmt("alias.umcheck=!grep -c %s /proc/$PPID/maps", su_maps_name());
    const char *argv2[] = {"git", "-c", alias, "umcheck", NULL};
    char *work = su_fmt("%s/work", dpre);
    su_opts o = {.argv = argv2, .env = env, .preload = 1, .cwd = work, .timeout = 30};
    su_result r;
    su_run(&o, &r);
    SU_ASSERT_OK(&r, "git alias maps check");
    cr_assert(atoi(r.out) >= 1, "git does not have %s mapped: %s", su_maps_name(), r.out);
    su_result_free(&r);
    su_rmtree(dir);
}

/* ---- 4. gcc ----------------------------------------------------------------------------------- */

enum { GCC_FUNCS = 1000 };

static void make_big_c(const char *path) {
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot create %s", path);
    fprintf(f, "struct s { int a; long b; double c; char name[16]; };\n"
               "static inline int mix(int a, int b) { return (a * 31) ^ (b >> 3); }\n");
    for (int i = 0; i < GCC_FUNCS; i++)
        fprintf(f,
                "int f%d(const int *a, int n, struct s *st) {\n"
                "  int t = n * %d + (a[0] >> %d);\n"
                "  if (t & 1) t = t * 3 + a[1]; else t ^= n / (a[2] | 1);\n"
                "  for (int i = 0; i < n; i++) t = mix(t, a[i]) + %d;\n"
                "  for (int i = 0; i < 4; i++) st->name[i] = (char)(t + i * %d);\n"
                "  st->b += t;\n"
                "  switch (t & 3) { case 0: st->c += t * 0.5; break; case 1: st->a ^= t; break;\n"
                "    default: st->b -= %d; }\n"
                "  return t > %d ? t - st->a : t + (int)st->c;\n"
                "}\n",
                i, i, i % 17, i % 11, i % 13, i % 29, i % 101);
    fprintf(f, "int (*const table[])(const int *, int, struct s *) = {\n");
    for (int i = 0; i < GCC_FUNCS; i++) fprintf(f, "f%d,%s", i, i % 16 == 15 ? "\n" : " ");
    fprintf(f, "};\n");
    fclose(f);
}

Test(programs, gcc, .timeout = 240) {
    char *gcc = su_need("gcc", "gcc");
    char *dir = su_tmpdir("gcc");
    char *src = su_fmt("%s/big.c", dir);
    make_big_c(src);
    const char *env[] = {"LC_ALL=C", "GCC_COLORS", "SOURCE_DATE_EPOCH=1700000000", NULL};
    const char *argv1[] = {gcc, "-O2", "-Wall", "-c", "big.c", "-o", "plain.o", NULL};
    const char *argv2[] = {gcc, "-O2", "-Wall", "-c", "big.c", "-o", "pre.o", NULL};
    twice_t t = {.label = "gcc -O2 on a generated 1000-function file", .argv_plain = argv1,
                 .argv_pre = argv2, .env = env, .cwd_plain = dir, .cwd_pre = dir,
                 .timeout = 110, .watch_for = "cc1"};
    su_result plain, pre;
    run_twice(&t, &plain, &pre);
    assert_same_output(t.label, &plain, &pre);
    cr_assert_str_eq(pre.err, plain.err, "gcc diagnostics differ with umalloc");
    char *o1 = su_fmt("%s/plain.o", dir), *o2 = su_fmt("%s/pre.o", dir);
    assert_same_file(t.label, o1, o2);
    su_result_free(&plain);
    su_result_free(&pre);
    su_rmtree(dir);
}

/* ---- 5. sort ---------------------------------------------------------------------------------- */

static const char SORT_SCRIPT[] =
    "set -e\n"
    "sort ../in.txt > plain-sort.txt\n"
    "sort -t, -k2,2n -k1,1 -S 8M --parallel=2 -T . ../in.txt > key-sort.txt\n"
    "sort -u -t, -k1,1 -S 50M ../in.txt > unique.txt\n"
    "sort -r -k3 --parallel=2 ../in.txt | head -1000 > rev-head.txt\n"
    "wc -l < unique.txt\n"
    "echo done\n";

Test(programs, sort, .timeout = 180) {
    char *sort = su_need("sort", "coreutils");
    free(sort);
    char *sh = su_need("sh", "dash");
    char *dir = su_tmpdir("sort");
    char *in = su_fmt("%s/in.txt", dir);
    FILE *f = fopen(in, "w");
    cr_assert_not_null(f, "cannot create %s", in);
    uint64_t s = 0x853c49e6748fea9bull;
    for (int i = 0; i < 1000000; i++) {
        char w[24];
        int len = 3 + (int)(xorshift(&s) % 18);
        for (int k = 0; k < len; k++) w[k] = (char)('a' + xorshift(&s) % 26);
        w[len] = 0;
        fprintf(f, "%s,%u,%llx\n", w, (unsigned)(xorshift(&s) % 1000001),
                (unsigned long long)(xorshift(&s) >> 24));
    }
    cr_assert_eq(fclose(f), 0, "writing %s", in);
    char *script = su_fmt("%s/script.sh", dir);
    su_write_str(script, SORT_SCRIPT);
    char *dplain = su_fmt("%s/plain", dir), *dpre = su_fmt("%s/pre", dir);
    make_dir(dplain);
    make_dir(dpre);
    const char *env[] = {"LC_ALL=C", "TMPDIR", NULL};
    const char *argv[] = {sh, script, NULL};
    twice_t t = {.label = "sort of a 1M-line file", .argv_plain = argv, .env = env,
                 .cwd_plain = dplain, .cwd_pre = dpre, .timeout = 80, .watch_for = "sort"};
    su_result plain, pre;
    run_twice(&t, &plain, &pre);
    assert_same_output(t.label, &plain, &pre);
    static const char *outs[] = {"plain-sort.txt", "key-sort.txt", "unique.txt", "rev-head.txt"};
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) {
        char *a = su_fmt("%s/%s", dplain, outs[i]), *b = su_fmt("%s/%s", dpre, outs[i]);
        assert_same_file(t.label, a, b);
        free(a);
        free(b);
    }
    char *first = su_fmt("%s/plain-sort.txt", dplain);
    size_t len;
    char *sorted = su_read_file(first, &len);
    cr_assert(sorted && len > 20000000, "sort output too short: %zu bytes", len);
    free(sorted);
    su_result_free(&plain);
    su_result_free(&pre);
    su_rmtree(dir);
}

/* ---- 6. redis-server under redis-benchmark ---------------------------------------------------- */

static su_proc redis_proc;
static int redis_running;

static void redis_fini(void) {
    if (redis_running) { /* the test failed half-way: don't leave a server behind */
        kill(-redis_proc.pid, SIGKILL);
        kill(redis_proc.pid, SIGKILL);
        waitpid(redis_proc.pid, NULL, 0);
        redis_running = 0;
    }
}

static int port_free(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = bind(s, (struct sockaddr *)&a, sizeof a) == 0;
    close(s);
    return ok;
}

static int proc_alive(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    char *rp = strrchr(buf, ')');
    return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

/* redis-cli -p PORT ARGS... (not preloaded: the server is what is under test). */
static char *cli(const char *cli_path, const char *port, const char *const *args,
                 const char *stdin_path) {
    const char *argv[16] = {cli_path, "-h", "127.0.0.1", "-p", port};
    int n = 5;
    for (int i = 0; args[i] && n < 15; i++) argv[n++] = args[i];
    argv[n] = NULL;
    su_opts o = {.argv = argv, .preload = 0, .timeout = 20, .stdin_path = stdin_path};
    su_result r;
    su_run(&o, &r);
    cr_assert(!r.timed_out && !r.signaled, "redis-cli %s: %s", args[0], su_status(&r));
    free(r.err);
    return r.out;
}

static void cli_expect(const char *cli_path, const char *port, const char *const *args,
                       const char *want) {
    char *out = cli(cli_path, port, args, NULL);
    cr_assert_str_eq(out, want, "redis-cli %s %s: got \"%s\", want \"%s\"", args[0],
                     args[1] ? args[1] : "", out, want);
    free(out);
}

Test(programs, redis, .timeout = 200, .fini = redis_fini) {
    char *server = su_need("redis-server", "redis-server");
    char *clip = su_need("redis-cli", "redis-tools");
    char *bench = su_need("redis-benchmark", "redis-tools");
    char *dir = su_tmpdir("redis");
    int port = 16379 + getpid() % 1000, tries = 0;
    while (!port_free(port) && tries++ < 200) port = 16379 + (port - 16379 + 7) % 3000;
    cr_assert(port_free(port), "no free loopback port found for redis-server");
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    char *log = su_fmt("%s/redis.log", dir), *errlog = su_fmt("%s/redis.err", dir);
    const char *argv[] = {server,         "--port",       portstr, "--bind",     "127.0.0.1",
                          "--save",       "",             "--appendonly", "no",  "--daemonize",
                          "no",           "--dir",        dir,     "--logfile",  "",
                          "--protected-mode", "yes",     NULL};
    su_opts o = {.argv = argv, .preload = 1, .timeout = 120, .stdout_path = log,
                 .stderr_path = errlog};
    double t0 = su_now();
    redis_proc = su_spawn(&o);
    redis_running = 1;

    /* Up within 15 s. */
    int up = 0;
    while (!up && su_now() - t0 < 15 && proc_alive(redis_proc.pid)) {
        const char *ping[] = {"ping", NULL};
        char *out = cli(clip, portstr, ping, NULL);
        up = strcmp(out, "PONG\n") == 0;
        free(out);
        if (!up) usleep(100000);
    }
    if (!up) {
        char *l = su_read_file(log, NULL), *e = su_read_file(errlog, NULL);
        cr_assert_fail("redis-server under umalloc did not answer PING within 15 s (%s)\n"
                       "--- log ---\n%s\n--- stderr ---\n%s",
                       proc_alive(redis_proc.pid) ? "still running" : "it exited", su_tail(l, 3000),
                       su_tail(e, 2000));
    }
    /* It is umalloc's process. */
    char *mpath = su_fmt("/proc/%d/maps", (int)redis_proc.pid);
    char *maps = su_read_file(mpath, NULL);
    cr_assert(maps && strstr(maps, su_maps_name()), "redis-server (pid %d) does not map %s",
              (int)redis_proc.pid, su_maps_name());
    free(maps);

    /* Known values, before the benchmark. */
    char *bigfile = su_fmt("%s/big.txt", dir);
    size_t biglen = 300000;
    char *big = malloc(biglen + 1);
    uint64_t s = 42;
    for (size_t i = 0; i < biglen; i++) big[i] = (char)('A' + xorshift(&s) % 26);
    big[biglen] = 0;
    su_write_file(bigfile, big, biglen);
    {
        const char *a1[] = {"set", "umtest:k1", "hello umalloc", NULL};
        cli_expect(clip, portstr, a1, "OK\n");
        const char *a2[] = {"-x", "set", "umtest:big", NULL};
        char *out = cli(clip, portstr, a2, bigfile);
        cr_assert_str_eq(out, "OK\n", "redis-cli -x set umtest:big: %s", out);
        free(out);
        const char *a3[] = {"incrby", "umtest:n", "41", NULL};
        cli_expect(clip, portstr, a3, "41\n");
        const char *a4[] = {"hset", "umtest:h", "f1", "v1", "f2", "v2", "f3", "v3", NULL};
        cli_expect(clip, portstr, a4, "3\n");
        const char *a5[] = {"rpush", "umtest:l", "a", "b", "c", "d", NULL};
        cli_expect(clip, portstr, a5, "4\n");
    }

    const char *bargv[] = {bench, "-h", "127.0.0.1", "-p", portstr, "-n", "100000", "-q", "-P",
                           "16", "-r", "100000", "-t",
                           "set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,lrange_100,mset",
                           NULL};
    su_opts bo = {.argv = bargv, .preload = 0, .timeout = 100};
    su_result br;
    su_run(&bo, &br);
    fprintf(stderr, "[redis] redis-benchmark: %s in %.1f s\n", su_status(&br), br.secs);
    cr_assert(proc_alive(redis_proc.pid), "redis-server under umalloc died during the benchmark\n%s",
              su_tail(su_read_file(log, NULL), 3000));
    SU_ASSERT_OK(&br, "redis-benchmark against the preloaded redis-server");
    static const char *tests[] = {"SET:", "GET:", "INCR:", "LPUSH:", "RPUSH:", "LPOP:", "RPOP:",
                                  "SADD:", "HSET:", "SPOP:", "ZADD:", "LRANGE_100", "MSET"};
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        cr_assert(strstr(br.out, tests[i]) != NULL, "redis-benchmark output lacks %s:\n%s",
                  tests[i], su_tail(br.out, 3000));
    cr_assert(strstr(br.out, "ERR") == NULL && strstr(br.out, "rror") == NULL &&
                  strstr(br.err, "rror") == NULL,
              "redis-benchmark reported errors:\n%s\n%s", su_tail(br.out, 2000),
              su_tail(br.err, 1000));
    su_result_free(&br);

    /* Still answering, and the known values are intact. */
    {
        const char *p[] = {"ping", NULL};
        cli_expect(clip, portstr, p, "PONG\n");
        const char *g1[] = {"get", "umtest:k1", NULL};
        cli_expect(clip, portstr, g1, "hello umalloc\n");
        const char *g2[] = {"get", "umtest:big", NULL};
        char *out = cli(clip, portstr, g2, NULL);
        cr_assert(strlen(out) == biglen + 1 && strncmp(out, big, biglen) == 0,
                  "GET umtest:big: %zu bytes back, want %zu, content %s", strlen(out), biglen + 1,
                  strncmp(out, big, biglen) == 0 ? "same" : "DIFFERENT");
        free(out);
        const char *g3[] = {"incr", "umtest:n", NULL};
        cli_expect(clip, portstr, g3, "42\n");
        const char *g4[] = {"hget", "umtest:h", "f2", NULL};
        cli_expect(clip, portstr, g4, "v2\n");
        const char *g5[] = {"lrange", "umtest:l", "0", "-1", NULL};
        cli_expect(clip, portstr, g5, "a\nb\nc\nd\n");
        const char *g6[] = {"dbsize", NULL};
        out = cli(clip, portstr, g6, NULL);
        cr_assert(atoi(out) > 1000, "DBSIZE after the benchmark: %s", out);
        free(out);
        const char *g7[] = {"flushall", NULL}; /* frees everything at once */
        cli_expect(clip, portstr, g7, "OK\n");
        const char *g8[] = {"dbsize", NULL};
        cli_expect(clip, portstr, g8, "0\n");
        const char *g9[] = {"set", "umtest:after", "flush", NULL};
        cli_expect(clip, portstr, g9, "OK\n");
        const char *g10[] = {"get", "umtest:after", NULL};
        cli_expect(clip, portstr, g10, "flush\n");
    }

    /* Clean shutdown: exit status 0 within 20 s. */
    const char *sd[] = {"shutdown", "nosave", NULL};
    free(cli(clip, portstr, sd, NULL));
    redis_proc.timeout = su_now() - redis_proc.start + 20;
    su_result r;
    su_wait(&redis_proc, &r);
    redis_running = 0;
    char *l = su_read_file(log, NULL), *e = su_read_file(errlog, NULL);
    cr_assert(su_ok(&r), "redis-server under umalloc after SHUTDOWN NOSAVE: %s\n--- log ---\n%s\n"
                         "--- stderr ---\n%s",
              su_status(&r), su_tail(l, 3000), su_tail(e, 2000));
    cr_assert(strstr(l, "crashed") == NULL && strstr(l, "BUG REPORT") == NULL,
              "redis-server log reports a crash:\n%s", su_tail(l, 3000));
    cr_assert(su_umalloc_message(e) == NULL && su_umalloc_message(l) == NULL,
              "umalloc complained in redis-server:\n%s\n%s", su_tail(e, 2000), su_tail(l, 2000));
    fprintf(stderr, "[redis] server on port %d: %s after %.1f s total\n", port, su_status(&r),
            su_now() - t0);
    free(l);
    free(e);
    free(big);
    su_rmtree(dir);
}
