#!/usr/bin/env bash
# The TLB-bound benchmarks (issue 13), part of `make bench`; alone: scripts/bench-tlb.sh.
#
# bench/tlb.c's two workloads, a random pointer chase over 512 MiB of 64-byte nodes and random
# lookups in a 5 M-entry chained hash table, under umalloc with each UMALLOC_HUGEPAGES setting
# and the peers in their huge-page modes:
#   umalloc-4k      UMALLOC_HUGEPAGES=none
#   umalloc-thp     UMALLOC_HUGEPAGES=thp (the default)
#   umalloc-2M      UMALLOC_HUGEPAGES=2M
#   umalloc-1G      UMALLOC_HUGEPAGES=1G         (only where the kernel has 1 GiB pages)
#   glibc-hugetlb1  GLIBC_TUNABLES=glibc.malloc.hugetlb=1   (THP advice)
#   glibc-hugetlb2  GLIBC_TUNABLES=glibc.malloc.hugetlb=2   (hugetlb pages)
#   mimalloc-large  MIMALLOC_ALLOW_LARGE_OS_PAGES=1 (and MIMALLOC_RESERVE_HUGE_OS_PAGES=3 where
#                   the kernel has 1 GiB pages)
#   jemalloc-thp    MALLOC_CONF=thp:always
#   tcmalloc        as it comes
# RUNS runs each (default 3), interleaved (each round in a rotated order) so that drift on this
# shared machine hits every configuration alike; the report shows medians. Time is the random
# phase only (bench/tlb.c); peak RSS and page faults are the whole process's.
# As root it sizes the 2 MiB pool (and the 1 GiB one, where there is one) for the hugetlb modes
# and puts both back on exit; elsewhere the hugetlb rows run on empty pools (and say so).
#
# Writes build/bench/tlb.csv (one line per run) and build/bench/tlb-meta.txt; the report's
# section comes from scripts/bench-report.py (--tlb). Environment: RUNS, TLB_CONFIGS (a subset,
# by name), TLB_MIB (512), TLB_STEPS (2000000), TLB_ENTRIES (5000000), TLB_LOOKUPS (4000000).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
OUT=build/bench
BIN=$OUT/bin
RUNS=${RUNS:-3}
START=$(date +%s)
make -s -f bench/bench.mk "$BIN/tlb" || exit 1

libpath() { dpkg -L "$1" 2>/dev/null | grep -E "/$2\$" | head -1; }
JE=$(libpath libjemalloc2 'libjemalloc\.so\.2')
MI=$(libpath libmimalloc2.0 'libmimalloc\.so\.2')
TC=$(libpath libtcmalloc-minimal4 'libtcmalloc_minimal\.so\.4')
UM=${BENCH_UMALLOC:-$ROOT/build/libumalloc.so}
GIGDIR=/sys/kernel/mm/hugepages/hugepages-1048576kB
have_1g=0
[ -e $GIGDIR/nr_hugepages ] && have_1g=1

# name|library|environment
CONFIGS="umalloc-4k|$UM|UMALLOC_HUGEPAGES=none
umalloc-thp|$UM|UMALLOC_HUGEPAGES=thp
umalloc-2M|$UM|UMALLOC_HUGEPAGES=2M
umalloc-1G|$UM|UMALLOC_HUGEPAGES=1G
glibc-hugetlb1||GLIBC_TUNABLES=glibc.malloc.hugetlb=1
glibc-hugetlb2||GLIBC_TUNABLES=glibc.malloc.hugetlb=2
mimalloc-large|$MI|MIMALLOC_ALLOW_LARGE_OS_PAGES=1$([ $have_1g = 1 ] && echo ' MIMALLOC_RESERVE_HUGE_OS_PAGES=3')
jemalloc-thp|$JE|MALLOC_CONF=thp:always
tcmalloc|$TC|"
names=()
declare -A LIBOF ENVOF
while IFS='|' read -r n l e; do
    [ -n "${TLB_CONFIGS:-}" ] && [[ " $TLB_CONFIGS " != *" $n "* ]] && continue
    if [ "$n" = umalloc-1G ] && [ $have_1g = 0 ]; then
        echo "bench-tlb: !!! SKIP umalloc-1G: this kernel has no 1 GiB hugetlb pages ($GIGDIR)" >&2
        continue
    fi
    case $n in glibc-*) ;; *) [ -n "$l" ] && [ -e "$l" ] || { echo "bench-tlb: !!! SKIP $n: library missing" >&2; continue; } ;; esac
    names+=("$n") LIBOF[$n]=$l ENVOF[$n]=$e
done <<<"$CONFIGS"

# The pools: 512 MiB of nodes plus headers and the pointer array need about 350 pages of 2 MiB
# in the hungriest configuration (glibc's 80-byte chunks). 512 MiB is 64 times the reach of an
# L2 TLB of about 2000 entries with 4 KiB pages (8 MiB), and within its reach with 2 MiB pages
# (4 GiB): as TLB-bound as a larger table, for fewer page faults in the 4 KiB configurations
# (half of what 1 GiB took, which kept make bench within its 15 minutes).
saved_nr=$(cat /proc/sys/vm/nr_hugepages) saved_gig=$(cat $GIGDIR/nr_hugepages 2>/dev/null || echo -)
pool_note="not root: hugetlb pools left as they were ($saved_nr pages of 2 MiB)"
if [ "$(id -u)" = 0 ]; then
    trap 'echo "$saved_nr" >/proc/sys/vm/nr_hugepages; [ "$saved_gig" = - ] || echo "$saved_gig" >$GIGDIR/nr_hugepages' EXIT
    trap 'exit 130' INT TERM
    echo 450 >/proc/sys/vm/nr_hugepages
    [ $have_1g = 1 ] && echo 4 >$GIGDIR/nr_hugepages 2>/dev/null
    pool_note="2 MiB pool: $(cat /proc/sys/vm/nr_hugepages) pages (asked 450)$([ $have_1g = 1 ] && echo ", 1 GiB pool: $(cat $GIGDIR/nr_hugepages) pages")"
fi
echo "bench-tlb: $pool_note" >&2

CSV=$OUT/tlb.csv
echo "workload,config,run,time_s,build_s,rss_kb,minflt,majflt,status" >"$CSV"
ARGS_chase="mib=${TLB_MIB:-512} steps=${TLB_STEPS:-2000000}"
ARGS_hash="hash=1 entries=${TLB_ENTRIES:-5000000} lookups=${TLB_LOOKUPS:-4000000}"
nc=${#names[@]}
for ((k = 1; k <= RUNS; k++)); do
    for w in chase hash; do
        args=ARGS_$w
        for ((i = 0; i < nc; i++)); do
            n=${names[$(((i + k - 1) % nc))]}
            # shellcheck disable=SC2086
            line=$(env ${ENVOF[$n]} ${LIBOF[$n]:+LD_PRELOAD=${LIBOF[$n]}} "$BIN/tlb" ${!args} 2>"$OUT/tlb-$w-$n.err")
            rc=$?
            t=$(sed -n 's/.* time=\([0-9.]*\).*/\1/p' <<<"$line") b=$(sed -n 's/.* build=\([0-9.]*\).*/\1/p' <<<"$line")
            r=$(sed -n 's/.* rss_kb=\([0-9]*\).*/\1/p' <<<"$line") mi=$(sed -n 's/.* minflt=\([0-9]*\).*/\1/p' <<<"$line")
            ma=$(sed -n 's/.* majflt=\([0-9]*\).*/\1/p' <<<"$line")
            st=ok; { [ $rc = 0 ] && [ -n "$t" ]; } || st=fail
            echo "$w,$n,$k,${t:-},${b:-},${r:-},${mi:-},${ma:-},$st" >>"$CSV"
            printf 'bench-tlb: run %d/%d %-5s %-15s %7ss %7ss build %6s MiB %8s faults %s\n' "$k" "$RUNS" "$w" "$n" "${t:--}" \
                "${b:--}" "$(( ${r:-0} / 1024 ))" "${mi:--}" "$st" >&2
        done
    done
done
{
    echo "command=${TLB_COMMAND:-scripts/bench-tlb.sh}"
    echo "runs=$RUNS"
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "duration_s=$(($(date +%s) - START))"
    echo "kernel=$(uname -sr)"
    echo "thp=$(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)"
    echo "pools=$pool_note"
    echo "have_1g=$have_1g"
    echo "args_chase=$ARGS_chase"
    echo "args_hash=$ARGS_hash"
    for n in "${names[@]}"; do echo "config_$n=${ENVOF[$n]}${LIBOF[$n]:+ LD_PRELOAD=${LIBOF[$n]#"$ROOT"/}}"; done
} >"$OUT/tlb-meta.txt"
echo "bench-tlb: done in $(($(date +%s) - START)) s; raw results in $CSV" >&2
