#!/usr/bin/env bash
# The allocator benchmark suite (`make bench`, `make bench QUICK=1`).
#
# Runs every workload under glibc, jemalloc, mimalloc, tcmalloc and umalloc -- the same binaries,
# the allocator swapped in with LD_PRELOAD (glibc: no preload) -- interleaved run by run, in an
# order that changes each round so that every allocator follows each other one once (A B E C D,
# B C A D E, ...: see "Williams" below) and drift on this noisy machine hits all alike, and records
# wall time, CPU time (user+sys) and peak RSS of every run as measured by bench/runner.c
# (fork/exec + wait4). Then counts instructions per operation (scripts/bench-instr.sh) and writes
# docs/benchmarks.md with charts in docs/img/ (scripts/bench-report.py).
#
# Environment:
#   QUICK=1        small sizes, 3 runs: the whole suite in well under 2 minutes
#   RUNS=N         runs per workload and allocator (default 5, QUICK 3); the median is reported.
#                  With as many runs as allocators, each follows each other about equally often
#                  (5 for the 5 default ones; an odd count also has a middle run for a median).
#                  The 50 rows (each about 0.25-0.7 s under glibc, rptest 2 s) x 5 allocators x 5 runs
#                  take 8-10.5 minutes on the 2-core machine (its slow phases stretch every run by
#                  about a quarter); the instruction counts, the cost of counting and the TLB pair
#                  bring make bench to 10-13.5
#   ALLOCS="..."   subset of: glibc jemalloc mimalloc tcmalloc umalloc, umalloc-nostats
#                  (build/nostats/libumalloc.so, statistics compiled out: what counting costs) and
#                  umalloc-secure (build/libumalloc-secure.so, the hardened build: what it costs);
#                  all of them by default
#   WORKLOADS="..." subset of workload names, shell patterns allowed ("churn-* redis")
#   BENCH_INSTR=0  skip the instruction counts
#   BENCH_REPORT=0 do not rewrite docs/benchmarks.md (results stay in build/bench/)
#   BENCH_ALLOW_NO_UMALLOC=1  exit 0 even if build/libumalloc.so is missing
#   BENCH_UMALLOC=path        benchmark another build of umalloc (default build/libumalloc.so)
#   TLB=0          skip the TLB-bound workloads (scripts/bench-tlb.sh; TLB_RUNS=N runs, default 2)
# Raw results: build/bench/results.csv (one line per run), build/bench/instr.csv, build/bench/meta.txt;
# output of the last run of each workload/allocator pair: build/bench/logs/.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
OUT=build/bench
BIN=$OUT/bin
LOGS=$OUT/logs
TMP=$OUT/tmp
QUICK=${QUICK:-0}
[ "$QUICK" = 0 ] || [ "$QUICK" = 1 ] || QUICK=1
RUNS_ENV=${RUNS:-}
if [ "$QUICK" = 1 ]; then RUNS=${RUNS:-3}; TIMEOUT=60; else RUNS=${RUNS:-5}; TIMEOUT=180; fi
START=$(date +%s)

say() { printf '%s\n' "$*"; }
warn() { printf 'bench: WARNING: %s\n' "$*" >&2; }
loud() {
    printf '\n%s\n' "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
    printf '!!! %s\n' "$@" >&2
    printf '%s\n\n' "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
}
die() { printf 'bench: ERROR: %s\n' "$*" >&2; exit 1; }
now_ms() { date +%s%3N; }
fmt_time() { # seconds -> m:ss
    local s=$1
    printf '%d:%02d' $((s / 60)) $((s % 60))
}

# --- tools -----------------------------------------------------------------------------------
for t in cc make; do command -v $t >/dev/null || die "$t not found (run scripts/deps.sh bench)"; done
PY=/usr/bin/python3
[ -x $PY ] || PY=$(command -v python3) || die "python3 not found"

# --- allocators ------------------------------------------------------------------------------
# The peers come from Debian's packages; find the library with dpkg -L, else the usual path.
libpath() { # package, library name pattern, fallback
    local p
    p=$(dpkg -L "$1" 2>/dev/null | grep -E "/$2\$" | head -1)
    if [ -n "$p" ] && [ -e "$p" ]; then echo "$p"; elif [ -e "$3" ]; then echo "$3"; fi
}
declare -A LIB
LIB[glibc]=""
LIB[jemalloc]=$(libpath libjemalloc2 'libjemalloc\.so\.2' /usr/lib/x86_64-linux-gnu/libjemalloc.so.2)
LIB[mimalloc]=$(libpath libmimalloc2.0 'libmimalloc\.so\.2' /usr/lib/x86_64-linux-gnu/libmimalloc.so.2)
LIB[tcmalloc]=$(libpath libtcmalloc-minimal4 'libtcmalloc_minimal\.so\.4' /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4)
LIB[umalloc]=${BENCH_UMALLOC:-$ROOT/build/libumalloc.so}
# the Makefile's build with statistics compiled out, to show what counting costs
LIB[umalloc-nostats]=${BENCH_UMALLOC_NOSTATS:-$ROOT/build/nostats/libumalloc.so}
# the hardened build (make secure, docs/security.md), to show what its checks cost
LIB[umalloc-secure]=${BENCH_UMALLOC_SECURE:-$ROOT/build/libumalloc-secure.so}
# glibc's own malloc, for programs linked against another allocator (redis-server links
# jemalloc): preloading libc puts its malloc first in the lookup order.
LIBC=$(ldconfig -p 2>/dev/null | awk '/libc\.so\.6 .*x86-64/ {print $NF; exit}')
[ -n "$LIBC" ] || LIBC=/lib/x86_64-linux-gnu/libc.so.6

# The peers and umalloc. umalloc's variants (umalloc-nostats, umalloc-secure) are timed only when
# ALLOCS names them: with them and the TLB section the run would pass 15 minutes. What counting
# costs is measured anyway, in instructions (callgrind, below), which timing here could not show.
DEFAULT_ALLOCS="glibc jemalloc mimalloc tcmalloc umalloc"
ALL_ALLOCS="$DEFAULT_ALLOCS umalloc-nostats umalloc-secure"
WANT_ALLOCS=${ALLOCS:-$DEFAULT_ALLOCS}
ALLOC_LIST=()
UMALLOC_MISSING=0
for a in $WANT_ALLOCS; do
    case " $ALL_ALLOCS " in *" $a "*) ;; *) die "unknown allocator '$a' (known: $ALL_ALLOCS)" ;; esac
    if [ "$a" = umalloc ] && [ ! -f "${LIB[umalloc]}" ]; then
        UMALLOC_MISSING=1
        loud "${LIB[umalloc]} IS MISSING: umalloc is NOT benchmarked." \
             "\`make bench\` builds it first (make all); run that, or build it and run again." \
             "Going on with the other allocators so the harness can be checked."
        continue
    fi
    if [ "$a" = umalloc-nostats ] && [ ! -f "${LIB[$a]}" ]; then
        warn "${LIB[$a]} not found (make build/nostats/libumalloc.so); skipping umalloc-nostats"
        continue
    fi
    if [ "$a" = umalloc-secure ] && [ ! -f "${LIB[$a]}" ]; then
        warn "${LIB[$a]} not found (make secure); skipping umalloc-secure"
        continue
    fi
    if [ "$a" != glibc ] && [ -z "${LIB[$a]}" ]; then
        warn "$a: library not found (package not installed? run scripts/deps.sh bench); skipping it"
        continue
    fi
    ALLOC_LIST+=("$a")
done
[ ${#ALLOC_LIST[@]} -gt 0 ] || die "no allocator to benchmark"

# --- workloads -------------------------------------------------------------------------------
# name | threads | kind | full-size arguments | QUICK arguments | glibc time estimate, full/quick (ms)
WORKLOAD_TABLE='
larson-1t|1|c|larson threads=1 rounds=20 ops=1000000|larson threads=1 rounds=10 ops=300000|700/70
larson-2t|2|c|larson threads=2 rounds=20 ops=1000000|larson threads=2 rounds=10 ops=300000|700/70
xmalloc-2t|2|c|xmalloc threads=2 blocks=2200000|xmalloc threads=2 blocks=800000|330/100
cache-scratch-1t|1|c|cache-scratch threads=1 iters=250000 size=8 reps=500|cache-scratch threads=1 iters=40000 size=8 reps=500|450/90
cache-scratch-2t|2|c|cache-scratch threads=2 iters=300000 size=8 reps=500|cache-scratch threads=2 iters=60000 size=8 reps=500|340/50
cache-thrash-1t|1|c|cache-thrash threads=1 iters=200000 size=8 reps=500|cache-thrash threads=1 iters=40000 size=8 reps=500|450/90
cache-thrash-2t|2|c|cache-thrash threads=2 iters=300000 size=8 reps=500|cache-thrash threads=2 iters=60000 size=8 reps=500|340/60
churn-small-1t|1|c|churn threads=1 ops=7000000 min=8 max=1024 lmax=131072|churn threads=1 ops=1200000 min=8 max=1024 lmax=65536|750/90
churn-small-2t|2|c|churn threads=2 ops=14000000 min=8 max=1024 lmax=131072|churn threads=2 ops=2000000 min=8 max=1024 lmax=65536|450/60
churn-medium-1t|1|c|churn threads=1 ops=800000 min=1024 max=65536 lmax=8192|churn threads=1 ops=200000 min=1024 max=65536 lmax=4096|750/90
churn-medium-2t|2|c|churn threads=2 ops=1200000 min=1024 max=65536 lmax=8192|churn threads=2 ops=200000 min=1024 max=65536 lmax=4096|450/60
realloc-1t|1|c|realloc threads=1 steps=1500000|realloc threads=1 steps=300000 max=131072|650/70
realloc-2t|2|c|realloc threads=2 steps=3000000|realloc threads=2 steps=500000 max=131072|500/50
realloc-small-1t|1|c|realloc threads=1 nbuf=8000 steps=2000000 min=1024 max=8192|realloc threads=1 nbuf=2000 steps=300000 min=1024 max=8192|550/60
large-1t|1|c|large threads=1 iters=20|large threads=1 iters=10 max=16777216|850/80
large-2t|2|c|large threads=2 iters=30|large threads=2 iters=16 max=16777216|700/80
buffers-1t|1|c|large threads=1 iters=1000000 live=1 min=131072 max=131072|large threads=1 iters=200000 live=1 min=131072 max=131072|300/60
buffers-2t|2|c|large threads=2 iters=75000 live=2 min=65536 max=458752|large threads=2 iters=30000 live=2 min=65536 max=458752|1050/420
buffers-1m-2t|2|c|large threads=2 iters=1000000 live=1 min=1048576 max=1179648 stride=65536|large threads=2 iters=200000 live=1 min=1048576 max=1179648 stride=65536|100/40
buffers-8m-1t|1|c|large threads=1 iters=1000 live=2 min=1048576 max=8388608|large threads=1 iters=300 live=2 min=1048576 max=8388608|470/140
tree-1t|1|c|tree threads=1 rounds=6 nodes=100000|tree threads=1 rounds=2 nodes=50000|450/60
tree-2t|2|c|tree threads=2 rounds=9 nodes=100000|tree threads=2 rounds=4 nodes=50000|380/60
threadchurn-1by1|1|c|threadchurn threads=5300 batch=1|threadchurn threads=2000 batch=1|250/80
threadchurn-batch8|8|c|threadchurn threads=3500 batch=8|threadchurn threads=1200 batch=8|270/90
threadchurn-work-4t|4|c|threadchurn threads=160 batch=4 work=200 wmax=262144 slots=0|threadchurn threads=40 batch=4 work=200 wmax=262144 slots=0|2100/530
larson-sized-2t|2|c|larson threads=2 rounds=20 ops=1000000 sized=1|larson threads=2 rounds=10 ops=300000 sized=1|300/50
mstress-2t|2|c|mstress threads=2 rounds=20 iters=100000|mstress threads=2 rounds=10 iters=30000|400/60
mstress-8t|8|c|mstress threads=8 rounds=10 iters=50000|mstress threads=8 rounds=4 iters=10000|550/80
mstress-fill-8t|8|c|mstress threads=8 rounds=6 iters=30000 fill=1|mstress threads=8 rounds=3 iters=8000 fill=1|350/60
malloc-large-1t|1|c|malloc-large iters=15 live=8|malloc-large iters=3 live=2 max=15|450/110
rptest-2t|2|c|rptest threads=2 iters=45000|rptest threads=2 iters=2500|2100/40
alloc-test-1t|1|c|alloc-test threads=1 iters=4000000|alloc-test threads=1 iters=800000 slots=16384|400/80
alloc-test-2t|2|c|alloc-test threads=2 iters=5000000|alloc-test threads=2 iters=1200000 slots=16384|380/80
ttest-2t|2|c|ttest threads=2 runs=20 actions=100000|ttest threads=2 runs=4 actions=50000|260/30
manythreads-64t|64|c|alloc-test threads=64 iters=12800000 slots=512 max=2048|alloc-test threads=64 iters=2560000 slots=512 max=2048|400/90
steady-1t|1|c|steady threads=1 slots=30000 iters=3000000 min=32 max=512|steady threads=1 slots=10000 iters=600000 min=32 max=512|380/80
steady-64-2t|2|c|steady threads=2 slots=20000 iters=9000000 min=64 max=64|steady threads=2 slots=10000 iters=2000000 min=64 max=64|370/80
steady-2t|2|c|steady threads=2 slots=1024 iters=4000000 min=4 max=32768|steady threads=2 slots=1024 iters=800000 min=4 max=32768|360/80
aligned-1t|1|c|steady threads=1 slots=2000 iters=2500000 min=16 max=2048 align=128|steady threads=1 slots=2000 iters=500000 min=16 max=2048 align=128|400/80
simple-1t|1|c|simple threads=1 ops=12000000|simple threads=1 ops=2000000|420/70
sh6bench-1t|1|c|sh6bench threads=1 iters=5000|sh6bench threads=1 iters=1000|450/100
sh8bench-2t|2|c|sh6bench threads=2 iters=400 cross=1|sh6bench threads=2 iters=60 cross=1|450/90
vector-1t|1|c|vector threads=1 rounds=150|vector threads=1 rounds=30|360/80
vector-2t|2|c|vector threads=2 rounds=100|vector threads=2 rounds=20|420/90
phases-1t|1|c|phases threads=1 phases=9 mib=24 keep=0|phases threads=1 phases=6 mib=8 keep=0|450/80
spawn|1|c|spawn procs=140|spawn procs=60|420/180
forkheap-4t|4|c|forkheap threads=4 mib=8 forks=30|forkheap threads=4 mib=4 forks=10|350/90
cxx-1t|1|c|cxx threads=1 ops=900000|cxx threads=1 ops=200000|410/100
cxx-2t|2|c|cxx threads=2 ops=800000|cxx threads=2 ops=150000|450/90
python|1|python|18000 3|8000 2|470/90
sqlite|1|sqlite|110000|30000|510/100
redis|1|redis|35000|6000|630/350
'
WL_NAMES=(); declare -A WL_THREADS WL_KIND WL_ARGS WL_EST
while IFS='|' read -r name threads kind full quick est; do
    [ -n "$name" ] || continue
    if [ -n "${WORKLOADS:-}" ]; then
        keep=0
        for pat in $WORKLOADS; do
            # shellcheck disable=SC2254
            case $name in $pat) keep=1 ;; esac
        done
        [ $keep = 1 ] || continue
    fi
    WL_NAMES+=("$name")
    WL_THREADS[$name]=$threads
    WL_KIND[$name]=$kind
    if [ "$QUICK" = 1 ]; then WL_ARGS[$name]=$quick; WL_EST[$name]=${est#*/}
    else WL_ARGS[$name]=$full; WL_EST[$name]=${est%/*}; fi
done <<<"$WORKLOAD_TABLE"
[ ${#WL_NAMES[@]} -gt 0 ] || die "WORKLOADS='${WORKLOADS:-}' matches no workload"

# real programs: drop those whose program is missing, loudly
keep_names=()
for w in "${WL_NAMES[@]}"; do
    case ${WL_KIND[$w]} in
        python) need="$PY" ;;
        sqlite) need=sqlite3 ;;
        redis) need="redis-server redis-benchmark redis-cli" ;;
        *) need= ;;
    esac
    ok=1
    for t in $need; do command -v "$t" >/dev/null || { warn "$w: $t not found, workload skipped (scripts/deps.sh bench installs it)"; ok=0; }; done
    [ $ok = 1 ] && keep_names+=("$w")
done
WL_NAMES=("${keep_names[@]}")

# --- build -----------------------------------------------------------------------------------
mkdir -p "$BIN" "$LOGS" "$TMP"
say "bench: building workloads (bench/bench.mk)"
make -s -f bench/bench.mk || die "building the workloads failed"

rm -f "$LOGS"/*.log "$LOGS"/*.server
# the command for one run: sets CMD (array: bench-run options and program)
run_cmd() { # workload allocator output-file
    local w=$1 a=$2 lib=${LIB[$2]} log=$3
    CMD=("$BIN/bench-run" -t "$TIMEOUT" -o "$log")
    case ${WL_KIND[$w]} in
        c)
            [ -n "$lib" ] && CMD+=(-p "$lib")
            # shellcheck disable=SC2206
            local args=(${WL_ARGS[$w]})
            CMD+=(-- "$BIN/${args[0]}" "${args[@]:1}")
            ;;
        python)
            [ -n "$lib" ] && CMD+=(-p "$lib")
            # shellcheck disable=SC2206
            CMD+=(-e PYTHONMALLOC=malloc -e PYTHONHASHSEED=0 -e PYTHONDONTWRITEBYTECODE=1 -- "$PY" -S bench/pyobjects.py ${WL_ARGS[$w]})
            ;;
        sqlite)
            local n=${WL_ARGS[$w]} sql=$TMP/sqlite-${WL_ARGS[$w]}.sql
            [ -f "$sql" ] || { echo ".parameter set @n $n"; cat bench/sqlite.sql; } >"$sql"
            [ -n "$lib" ] && CMD+=(-p "$lib")
            CMD+=(-i "$sql" -- sqlite3 :memory:)
            ;;
        redis)
            # redis-server links jemalloc itself: "glibc" preloads libc so that glibc's malloc wins
            CMD+=(-S -p "${lib:-$LIBC}" -- redis-server --port '{PORT}' --bind 127.0.0.1 --save ''
                  --appendonly no --daemonize no --protected-mode yes --dir "$TMP" --databases 1
                  --client bench/redis-client.sh '{PORT}' "${WL_ARGS[$w]}")
            ;;
    esac
}

# --- run -------------------------------------------------------------------------------------
CSV=$OUT/results.csv
echo "workload,threads,allocator,run,status,wall_s,user_s,sys_s,cpu_s,maxrss_kb" >"$CSV"
NA=${#ALLOC_LIST[@]}
WILLIAMS=(0) # 0, 1, NA-1, 2, NA-2, ... (see the measured loop)
for ((i = 1; ${#WILLIAMS[@]} < NA; i++)); do
    WILLIAMS+=("$i")
    ((${#WILLIAMS[@]} < NA)) && WILLIAMS+=($((NA - i)))
done
NW=${#WL_NAMES[@]}
TOTAL=$((NW * NA * RUNS))
DONE=0
TTY=0
[ -t 2 ] && TTY=1
FAILED=()
declare -A WL_SPENT_MS WL_RUNS_DONE # per workload: ms spent in measured runs, runs done

say "bench: $NW workloads x ${NA} allocators (${ALLOC_LIST[*]}) x $RUNS runs = $TOTAL runs$([ "$QUICK" = 1 ] && echo ', QUICK sizes')"
[ $UMALLOC_MISSING = 1 ] && say "bench: (umalloc missing: see above)"

# remaining time estimate, in ms: measured mean per run where known, else the table's estimate
# scaled by how far off the estimates were for the workloads seen so far
eta_ms() {
    local w spent=0 est_seen=0 left=0 scale_num scale_den
    for w in "${WL_NAMES[@]}"; do
        if [ "${WL_RUNS_DONE[$w]:-0}" -gt 0 ]; then
            spent=$((spent + WL_SPENT_MS[$w] / WL_RUNS_DONE[$w]))
            est_seen=$((est_seen + WL_EST[$w]))
        fi
    done
    scale_num=${spent:-1}; scale_den=$est_seen
    [ "$scale_den" -gt 0 ] || { scale_num=1; scale_den=1; }
    for w in "${WL_NAMES[@]}"; do
        local n=${WL_RUNS_DONE[$w]:-0} rem=$((NA * RUNS - ${WL_RUNS_DONE[$w]:-0}))
        [ $rem -gt 0 ] || continue
        if [ "$n" -gt 0 ]; then
            left=$((left + rem * (WL_SPENT_MS[$w] / n + 30)))
        else
            left=$((left + rem * (WL_EST[$w] * scale_num / scale_den + 30)))
        fi
    done
    echo $left
}

median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print v[(NR+1)/2]; else printf "%.6f\n", (v[NR/2]+v[NR/2+1])/2}'; }

wi=0
for w in "${WL_NAMES[@]}"; do
    wi=$((wi + 1))
    # The reference output every measured run must reproduce (the workloads print a checksum
    # line) is glibc's. For the real programs it comes from a warm-up run (not recorded), which
    # also loads the interpreter or server into the page cache. The C workloads were just built
    # and need no warm-up: when glibc runs first in the first round (the default order), its
    # first run gives the reference, and the 49 warm-ups' half a minute goes to measured runs.
    REF=
    REF_FROM_RUN=0
    if [ "${WL_KIND[$w]}" = c ] && [ "${ALLOC_LIST[$((WILLIAMS[0] % NA))]}" = glibc ]; then
        REF_FROM_RUN=1
    else
        run_cmd "$w" glibc "$TMP/warmup.log"
        "${CMD[@]}" >/dev/null
        REF=$(grep -a 'ok checksum=' "$TMP/warmup.log" | tail -1)
        if [ -z "$REF" ]; then
            warn "$w: the warm-up run under glibc printed no checksum line; output:"
            tail -5 "$TMP/warmup.log" >&2
        fi
    fi
    declare -A BROKEN=()
    for ((k = 1; k <= RUNS; k++)); do
        # Who ran just before matters on this VM: the guest reports freed memory to the host
        # (virtio-balloon free page reporting), and a process that faults in fresh memory
        # right after another freed a lot can pay host faults, several times slower (umalloc's
        # large-1t, measured by hand: 0.04-0.13 s after glibc, jemalloc, mimalloc or itself,
        # 0.29-0.31 s in two runs of three after tcmalloc). So no allocator may always follow
        # the same one. Rotating one order (A B C, B C A, ...) keeps every neighbour, which is
        # what earlier versions of this script did; round k instead runs the allocators in the
        # order W + k (mod n) of a Williams design, W = 0, 1, n-1, 2, n-2, ..., in which every
        # ordered pair is adjacent once in n rounds.
        for ((ai = 0; ai < NA; ai++)); do
            a=${ALLOC_LIST[$(((WILLIAMS[ai] + k - 1) % NA))]}
            DONE=$((DONE + 1))
            if [ -n "${BROKEN[$a]:-}" ]; then
                echo "$w,${WL_THREADS[$w]},$a,$k,skipped,,,,," >>"$CSV"
                WL_RUNS_DONE[$w]=$((${WL_RUNS_DONE[$w]:-0} + 1))
                continue
            fi
            run_cmd "$w" "$a" "$LOGS/$w.$a.log"
            t0=$(now_ms)
            line=$("${CMD[@]}")
            t1=$(now_ms)
            WL_SPENT_MS[$w]=$((${WL_SPENT_MS[$w]:-0} + t1 - t0))
            WL_RUNS_DONE[$w]=$((${WL_RUNS_DONE[$w]:-0} + 1))
            rc=; wall=; user=; sys=; cpu=; rss=
            for kv in $line; do
                case $kv in
                    rc=*) rc=${kv#rc=} ;; wall=*) wall=${kv#wall=} ;; user=*) user=${kv#user=} ;;
                    sys=*) sys=${kv#sys=} ;; cpu=*) cpu=${kv#cpu=} ;; maxrss_kb=*) rss=${kv#maxrss_kb=} ;;
                esac
            done
            status=ok
            got=$(grep -a 'ok checksum=' "$LOGS/$w.$a.log" | tail -1)
            if [ $REF_FROM_RUN = 1 ] && [ $k = 1 ] && [ "$a" = glibc ]; then
                REF=$got
                if [ -z "$REF" ]; then
                    warn "$w: the first run under glibc printed no checksum line; output:"
                    tail -5 "$LOGS/$w.$a.log" >&2
                fi
            fi
            if [ "$rc" != 0 ]; then
                status=fail
                why="exit status ${rc:-?}"
                [ "$rc" = 124 ] && why="timeout (${TIMEOUT}s)"
                [ -n "$rc" ] && [ "$rc" -gt 128 ] && [ "$rc" -lt 160 ] && why="killed by signal $((rc - 128))"
            elif [ -n "$REF" ] && [ "$got" != "$REF" ]; then
                status=fail
                why="wrong result: '$got', expected '$REF'"
            fi
            echo "$w,${WL_THREADS[$w]},$a,$k,$status,$wall,$user,$sys,$cpu,$rss" >>"$CSV"
            if [ $status != ok ]; then
                BROKEN[$a]=1
                FAILED+=("$w/$a")
                [ $TTY = 1 ] && printf '\r\033[K' >&2
                printf 'bench: FAILED: %s under %s, run %d: %s (log: %s)\n' "$w" "$a" "$k" "$why" "$LOGS/$w.$a.log" >&2
                tail -5 "$LOGS/$w.$a.log" | sed 's/^/    | /' >&2
                cp "$LOGS/$w.$a.log" "$LOGS/$w.$a.failed.log" 2>/dev/null
                if [ -f "$LOGS/$w.$a.log.server" ]; then
                    echo "    server log:" >&2
                    tail -5 "$LOGS/$w.$a.log.server" | sed 's/^/    | /' >&2
                    cp "$LOGS/$w.$a.log.server" "$LOGS/$w.$a.failed.log.server" 2>/dev/null
                fi
            fi
            el=$(($(date +%s) - START))
            left=$(($(eta_ms) / 1000))
            msg=$(printf '[%3d/%d %3d%%] %-18s %-9s run %d/%d  %6.3f s %6d MiB | elapsed %s, left ~%s' \
                "$DONE" "$TOTAL" $((DONE * 100 / TOTAL)) "$w" "$a" "$k" "$RUNS" "${wall:-0}" \
                $((${rss:-0} / 1024)) "$(fmt_time $el)" "$(fmt_time $left)")
            if [ $TTY = 1 ]; then printf '\r\033[K%s' "$msg" >&2; else printf '%s\n' "$msg" >&2; fi
        done
    done
    # one line per workload: median wall time per allocator
    [ $TTY = 1 ] && printf '\r\033[K' >&2
    summary=$(printf '%-18s' "$w")
    for a in "${ALLOC_LIST[@]}"; do
        m=$(awk -F, -v w="$w" -v a="$a" '$1 == w && $3 == a && $5 == "ok" {print $6}' "$CSV" | median)
        if [ "$m" = - ]; then summary+=$(printf '  %s FAIL' "$a"); else summary+=$(printf '  %s %.3fs' "$a" "$m"); fi
    done
    say "($wi/$NW) $summary"
    unset BROKEN
done
RUN_SECS=$(($(date +%s) - START))
cp "$CSV" "$OUT/results-$([ "$QUICK" = 1 ] && echo quick || echo full).csv"
say "bench: measured runs done in $(fmt_time $RUN_SECS)"

# --- instructions per operation ----------------------------------------------------------------
INSTR_CSV=$OUT/instr.csv
rm -f "$INSTR_CSV.new"
if [ "${BENCH_INSTR:-1}" != 0 ]; then
    if command -v valgrind >/dev/null; then
        say "bench: instructions per operation (callgrind)"
        BENCH_INSTR_CSV=$INSTR_CSV.new ALLOCS="${ALLOC_LIST[*]}" QUICK=$QUICK scripts/bench-instr.sh ||
            warn "scripts/bench-instr.sh failed"
        [ -s "$INSTR_CSV.new" ] && mv "$INSTR_CSV.new" "$INSTR_CSV"
    else
        warn "valgrind not found: no instruction counts (scripts/deps.sh bench installs it)"
    fi
fi
[ -f "$INSTR_CSV.new" ] && rm -f "$INSTR_CSV.new"

# --- what statistics counting costs, in instructions -----------------------------------------------
# Wall time on this machine moves by more than the few percent counting might cost, so the
# same workloads also run under callgrind (deterministic) with umalloc and with the no-stats
# build, at their QUICK sizes: total instructions of the whole program, side by side. Not the
# rows whose instructions are the program's own work, not allocation: cache-scratch and
# cache-thrash write their blocks in loops, churn-medium clears blocks of up to 64 KiB, steady-64
# pops and pushes one class. Their counting costs read 0.00-0.02 %, and under callgrind they
# took half of this part's minutes (13 of 26 G instructions).
COST_SKIP=" cache-scratch-1t cache-scratch-2t cache-thrash-1t cache-thrash-2t churn-medium-1t churn-medium-2t steady-64-2t "
COST_CSV=$OUT/stats-cost.csv
rm -f "$COST_CSV"
if [ "${BENCH_INSTR:-1}" != 0 ] && [ "$QUICK" != 1 ] && command -v valgrind >/dev/null &&
    [[ " ${ALLOC_LIST[*]} " == *" umalloc "* ]] && [ -f "${LIB[umalloc-nostats]}" ]; then
    say "bench: cost of statistics counting, in instructions (callgrind)"
    echo "workload,ir_umalloc,ir_nostats" >"$COST_CSV.new"
    while IFS='|' read -r name _threads kind _full quick _est; do
        [ "$kind" = c ] || continue
        [[ " ${WL_NAMES[*]} " == *" $name "* ]] || continue
        [[ "$COST_SKIP" == *" $name "* ]] && continue
        read -r prog pargs <<<"$quick"
        row="$name"
        # Both builds at once, one per core: an instruction count does not depend on what else
        # runs, and this part of the run would otherwise take minutes.
        for a in umalloc umalloc-nostats; do
            # shellcheck disable=SC2086
            LD_PRELOAD=${LIB[$a]} valgrind --tool=callgrind --callgrind-out-file=/dev/null \
                "$BIN/$prog" $pargs 2>"$TMP/cost-$a.err" >/dev/null &
        done
        wait
        for a in umalloc umalloc-nostats; do
            ir=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$TMP/cost-$a.err" | tail -1)
            row="$row,${ir:-}"
        done
        echo "$row" >>"$COST_CSV.new"
        printf '  %-18s %s\n' "$name" "${row#*,}"
    done <<<"$WORKLOAD_TABLE"
    mv "$COST_CSV.new" "$COST_CSV"
fi

# --- TLB-bound workloads and huge pages (issue 13) -----------------------------------------------
# scripts/bench-tlb.sh: 512 MiB pointer chase and 5 M-entry hash table under every huge-page mode
# of umalloc and of the peers; about a minute with its 2 runs. TLB=0 leaves it out; QUICK runs it
# at smaller sizes, once.
if [ "${TLB:-1}" != 0 ]; then
    say "bench: TLB-bound workloads (scripts/bench-tlb.sh)"
    if [ "$QUICK" = 1 ]; then
        RUNS=1 TLB_MIB=256 TLB_ENTRIES=2000000 TLB_STEPS=1000000 TLB_LOOKUPS=1000000 TLB_COMMAND="make bench QUICK=1" \
            scripts/bench-tlb.sh || warn "scripts/bench-tlb.sh failed"
    else
        RUNS=${TLB_RUNS:-2} TLB_COMMAND="make bench" scripts/bench-tlb.sh || warn "scripts/bench-tlb.sh failed"
    fi
fi

# --- metadata and report -------------------------------------------------------------------------
if [ -n "${MAKELEVEL:-}" ]; then
    COMMAND="make bench$([ "$QUICK" = 1 ] && echo ' QUICK=1')"
else
    COMMAND="$([ "$QUICK" = 1 ] && echo 'QUICK=1 ')scripts/bench.sh"
fi
[ -n "$RUNS_ENV" ] && COMMAND="RUNS=$RUNS_ENV $COMMAND"
[ -n "${ALLOCS:-}" ] && COMMAND="ALLOCS=\"$ALLOCS\" $COMMAND"
[ -n "${WORKLOADS:-}" ] && COMMAND="WORKLOADS=\"$WORKLOADS\" $COMMAND"
pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo '?'; }
{
    echo "command=$COMMAND"
    echo "quick=$QUICK"
    echo "runs=$RUNS"
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "duration_s=$(($(date +%s) - START))"
    echo "nproc=$(nproc)"
    echo "cpu=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "kernel=$(uname -sr)"
    echo "glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}') (libc6 $(pkgver libc6))"
    echo "mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "allocators=${ALLOC_LIST[*]}"
    echo "umalloc_missing=$UMALLOC_MISSING"
    echo "lib_glibc=libc6 $(pkgver libc6) (no preload)"
    echo "lib_jemalloc=libjemalloc2 $(pkgver libjemalloc2): ${LIB[jemalloc]}"
    echo "lib_mimalloc=libmimalloc2.0 $(pkgver libmimalloc2.0): ${LIB[mimalloc]}"
    echo "lib_tcmalloc=libtcmalloc-minimal4 $(pkgver libtcmalloc-minimal4): ${LIB[tcmalloc]}"
    umv=$(awk -F'"' '/define UMALLOC_VERSION/ {print $2}' include/umalloc.h 2>/dev/null)
    echo "lib_umalloc=umalloc ${umv:-?} (git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- core preload hugepages numa stats include 2>/dev/null || echo ', modified')): build/libumalloc.so"
    echo "lib_umalloc-nostats=umalloc built with -DUM_NO_STATS: ${LIB[umalloc-nostats]#"$ROOT"/}"
    echo "lib_umalloc-secure=umalloc built with -DUM_SECURE=1: ${LIB[umalloc-secure]#"$ROOT"/}"
    echo "prog_python=$($PY --version 2>&1)"
    echo "prog_sqlite=sqlite3 $(sqlite3 --version 2>/dev/null | awk '{print $1}')"
    echo "prog_redis=redis-server $(pkgver redis-server)"
    echo "cc=$(cc --version | head -1)"
    echo "failed=${FAILED[*]}"
    for w in "${WL_NAMES[@]}"; do
        case ${WL_KIND[$w]} in
            c) echo "args_$w=${WL_ARGS[$w]}" ;;
            python) echo "args_$w=PYTHONMALLOC=malloc python3 -S bench/pyobjects.py ${WL_ARGS[$w]}" ;;
            sqlite) echo "args_$w=sqlite3 :memory: < bench/sqlite.sql with @n = ${WL_ARGS[$w]}" ;;
            redis) echo "args_$w=redis-server --save '' --appendonly no; bench/redis-client.sh PORT ${WL_ARGS[$w]}" ;;
        esac
    done
} >"$OUT/meta.txt"

if [ "${BENCH_REPORT:-1}" != 0 ]; then
    if ! command -v gnuplot >/dev/null; then
        warn "gnuplot not found: the report will have no charts (scripts/deps.sh bench installs gnuplot-nox)"
    fi
    $PY scripts/bench-report.py --results "$CSV" --instr "$INSTR_CSV" --meta "$OUT/meta.txt" --cost "$COST_CSV" \
        --out docs/benchmarks.md --img docs/img || die "scripts/bench-report.py failed"
fi
say "bench: done in $(fmt_time $(($(date +%s) - START))); raw results in $CSV"

status=0
if [ ${#FAILED[@]} -gt 0 ]; then
    loud "FAILED runs: ${FAILED[*]}" "see build/bench/logs/*.failed.log"
    status=1
fi
if [ $UMALLOC_MISSING = 1 ]; then
    loud "${LIB[umalloc]} was missing: umalloc was NOT benchmarked."
    [ "${BENCH_ALLOW_NO_UMALLOC:-0}" = 1 ] || status=1
fi
exit $status
