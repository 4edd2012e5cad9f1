#!/usr/bin/env bash
# Instructions per operation, counted by valgrind's callgrind: deterministic, unlike wall time
# on this noisy machine (`make bench-instr`).
#
#   scripts/bench-instr.sh           table for glibc, jemalloc, mimalloc, tcmalloc, umalloc
#   scripts/bench-instr.sh --check   umalloc only: exit 1 if a malloc(32)+free pair costs more
#                                    than 30 instructions (BENCH_INSTR_LIMIT), printing the count
#
# The tests (bench/instr.c), each under LD_PRELOAD of the allocator (glibc: none):
#   pair  p = malloc(32); free(p)                      one op = one malloc + one free
#   ring  64 live 32-byte blocks: free the oldest, malloc a new one
#   rand  the same ring with sizes from 8..512
#   batch 25 blocks of 32 KiB allocated, then all freed (a batch bigger than a thread caches of
#         a class at first)
# The program counts N iterations and then 2N iterations as two separate parts (callgrind client
# requests, --collect-atstart=no); instructions per op = (Ir(2N) - Ir(N)) / N, so start-up,
# first-touch and call costs cancel. Two numbers per test: the whole loop iteration, and the part
# spent outside the test program (self costs of every object but bench/instr: the allocator, and
# libc or ld.so if it calls them), which leaves out the test loop's own ~10 instructions
# (counter, index, store to a volatile, PLT stubs). --check uses the second.
#
# Environment:
#   BENCH_INSTR_LIMIT=30       the --check limit
#   BENCH_INSTR_CHECK_LOOP=1   --check holds the whole loop iteration to the limit instead
#   ALLOCS="..."               subset of the allocators; may add umalloc-nostats
#                              (build/nostats/libumalloc.so)
#   BENCH_UMALLOC=path         another build of umalloc (default build/libumalloc.so)
#   QUICK=1                    N = 20000 instead of 100000 (the counts barely change)
#   BENCH_INSTR_CSV=path       where the table goes (default build/bench/instr.csv; not --check)
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
BIN=build/bench/bin
LIMIT=${BENCH_INSTR_LIMIT:-30}
CHECK=0
case "${1:-}" in
    --check) CHECK=1 ;;
    "") ;;
    -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac
if [ "${QUICK:-0}" = 1 ] || [ $CHECK = 1 ]; then N=20000; else N=100000; fi

die() { echo "bench-instr: ERROR: $*" >&2; exit 1; }
command -v valgrind >/dev/null || die "valgrind not found (scripts/deps.sh bench installs it)"
[ -f /usr/include/valgrind/callgrind.h ] || die "valgrind/callgrind.h not found (package valgrind)"
mkdir -p build/bench/tmp
make -s -f bench/bench.mk "$BIN/instr" || die "building bench/instr.c failed"
# callgrind's output goes to a directory of this run's own (the test runner and `make bench`
# may run this at the same time), removed at exit
TMP=$(mktemp -d build/bench/tmp/instr.XXXXXX) || die "mktemp failed"
trap 'rm -rf "$TMP"' EXIT

libpath() {
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
LIB[umalloc-nostats]=${BENCH_UMALLOC_NOSTATS:-$ROOT/build/nostats/libumalloc.so}

# Ir of one callgrind part spent outside the test program itself (in the allocator, libc,
# ld.so): self costs summed per object, minus the program's own (its loop and PLT stubs)
outside_prog() { # file
    awk -v prog="$ROOT/$BIN/instr" '
        function obname(s,   id, rest) {
            if (match(s, /^\([0-9]+\)/)) {
                id = substr(s, 1, RLENGTH); rest = substr(s, RLENGTH + 2)
                if (rest != "") name[id] = rest
                return name[id]
            }
            return s
        }
        /^ob=/ { cur = obname(substr($0, 4)); next }
        /^cob=/ { obname(substr($0, 5)); next }
        /^calls=/ { skip = 1; next }
        /^[0-9+*-]/ { if (skip) { skip = 0; next } self[cur] += $2; total += $2; next }
        END { if (!(prog in self)) exit 1; printf "%d\n", total - self[prog] }' "$1"
}

# prints instructions per op (one decimal): the whole loop, then the allocator part for allocator $1, test $2; non-zero on failure
measure() {
    local a=$1 t=$2 out=$TMP/cg.$1.$2 lib=${LIB[$1]}
    rm -f "$out" "$out".*
    if ! LD_PRELOAD=$lib valgrind --tool=callgrind --callgrind-out-file="$out" --collect-atstart=no \
        "$BIN/instr" "$t" "$N" >"$TMP/log.$a.$t" 2>&1; then
        echo "bench-instr: $a/$t: valgrind run failed:" >&2
        tail -5 "$TMP/log.$a.$t" >&2
        return 1
    fi
    local p1 p2
    p1=$(awk '/^summary:/ {print $2}' "$out.1" 2>/dev/null)
    p2=$(awk '/^summary:/ {print $2}' "$out.2" 2>/dev/null)
    if [ -z "$p1" ] || [ -z "$p2" ]; then
        echo "bench-instr: $a/$t: no callgrind parts in $out.1/$out.2" >&2
        return 1
    fi
    local o1 o2
    if ! o1=$(outside_prog "$out.1") || ! o2=$(outside_prog "$out.2"); then
        echo "bench-instr: $a/$t: could not split the count by object in $out.1/$out.2" >&2
        return 1
    fi
    echo "$p1 $p2 $o1 $o2" >"$TMP/ir.$a.$t"
    awk -v a="$p1" -v b="$p2" -v c="$o1" -v d="$o2" -v n="$N" 'BEGIN {printf "%.1f %.1f\n", (b - a) / n, (d - c) / n}'
}

if [ $CHECK = 1 ]; then
    [ -f "${LIB[umalloc]}" ] || die "${LIB[umalloc]} is missing (run make first)"
    r=$(measure umalloc pair) || die "could not measure umalloc"
    read -r tot v <<<"$r"
    # BENCH_INSTR_CHECK_LOOP=1: hold the whole loop iteration to the limit instead
    msg="bench-instr: umalloc malloc(32)+free pair: $v instructions in the allocator ($tot per loop iteration with the test's own loop)"
    if [ "${BENCH_INSTR_CHECK_LOOP:-0}" = 1 ]; then
        v=$tot
        msg="$msg; checking the whole loop: $v"
    fi
    if awk -v v="$v" -v l="$LIMIT" 'BEGIN {exit !(v <= l)}'; then
        echo "$msg: ok, limit $LIMIT"
        exit 0
    fi
    echo "$msg: MORE than the limit of $LIMIT: FAIL"
    exit 1
fi

ALL="glibc jemalloc mimalloc tcmalloc umalloc"
LIST=()
for a in ${ALLOCS:-$ALL}; do
    if [ "$a" = umalloc-nostats ] && [ ! -f "${LIB[$a]}" ]; then
        echo "bench-instr: ${LIB[$a]} not found, umalloc-nostats skipped" >&2
        continue
    fi
    if [ "$a" = umalloc ] && [ ! -f "${LIB[umalloc]}" ]; then
        echo "bench-instr: !!! build/libumalloc.so is MISSING: umalloc not measured !!!" >&2
        continue
    fi
    if [ "$a" != glibc ] && [ -z "${LIB[$a]:-}" ]; then
        echo "bench-instr: $a: library not found, skipped" >&2
        continue
    fi
    LIST+=("$a")
done
[ ${#LIST[@]} -gt 0 ] || die "no allocator to measure"

CSV=${BENCH_INSTR_CSV:-build/bench/instr.csv}
mkdir -p "$(dirname "$CSV")"
echo "allocator,test,n,ir_n,ir_2n,instr_per_op,alloc_ir_n,alloc_ir_2n,alloc_instr_per_op" >"$CSV"
status=0
printf 'Instructions per operation: callgrind Ir, (Ir(2N) - Ir(N)) / N with N = %d\n' "$N"
printf 'first the whole loop iteration, then [in brackets] the part spent in the allocator\n'
printf '%-16s %16s %16s %16s %16s\n' allocator 'pair' 'ring64' 'rand8-512' 'batch25x32K'
for a in "${LIST[@]}"; do
    row=$(printf '%-16s' "$a")
    for t in pair ring rand batch; do
        if r=$(measure "$a" "$t"); then
            read -r tot v <<<"$r"
            read -r p1 p2 o1 o2 <"$TMP/ir.$a.$t"
            echo "$a,$t,$N,$p1,$p2,$tot,$o1,$o2,$v" >>"$CSV"
            row+=$(printf ' %16s' "$tot [$v]")
        else
            row+=$(printf ' %16s' FAIL)
            status=1
        fi
    done
    echo "$row"
done
echo "(pair: malloc(32)+free; ring64: free the oldest of 64 live blocks + malloc(32); rand8-512: the"
echo " same with random sizes; batch25x32K: 25 mallocs of 32 KiB, then their 25 frees. One op = one"
echo " malloc + one free. The loop itself costs ~10 instructions.)"
echo "raw: $CSV"
exit $status
