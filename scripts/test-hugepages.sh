#!/usr/bin/env bash
# scripts/test-hugepages.sh: the `hugepages` step of `make test` (scripts/run-tests.sh).
#
# Huge pages, prefaulting, locking and um_map_file, as the program sees them: every check runs
# build/test/progs/hp_probe under LD_PRELOAD=build/libumalloc.so and reads the kernel's own
# accounts (HugePages_Free, /proc/PID/smaps, VmLck, page faults). Needs root, to size the
# hugetlb pools (vm.nr_hugepages and the 1 GiB pool); every pool it changes is put back as it
# was on exit, whatever happens. Elsewhere it exits 77 (SKIP) and says why.
#   1. UMALLOC_HUGEPAGES=2M with 64 pages in the pool: 100 MiB of 48-byte blocks take pages
#      from the pool, smaps shows KernelPageSize 2048 kB, and after the frees and the purge
#      delay the pages are back. With an empty pool: the same run, fallbacks counted. The same
#      with 1G where the kernel can give a 1 GiB page (else a loud SKIP line, and the rest runs).
#      UMALLOC_RESERVE=64M: the pool's pages are taken at start, segments come from them.
#   2. UMALLOC_PREFAULT=1: writing to 1 GiB of fresh 64 KiB blocks takes under 1 % of the page
#      faults (exceptions, counted by the kernel's software event) it takes without.
#      UMALLOC_MLOCK=1: VmLck covers umalloc's committed memory; with RLIMIT_MEMLOCK at 64 KiB
#      (as an unprivileged user), one line on stderr and a correct run.
#   4. um_map_file of a 1 GiB file, prefaulted: no major fault after the call; bad path, flags
#      and file type give errno and no mapping. A file on hugetlbfs (mounted here, unmounted on
#      exit) is mapped on its 2 MiB pages, read-only, with a pool that it fills exactly.
#   5. UMALLOC_HUGEPAGES=3M and UMALLOC_RESERVE=lots: one line each, naming variable, value and
#      what is accepted.
# With CI=true, a kernel that refuses 2 MiB pages is a failure, not a skip.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

LIB=$PWD/build/libumalloc.so
PROBE=$PWD/build/test/progs/hp_probe
NR=/proc/sys/vm/nr_hugepages
GIG=/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages

if [[ $(id -u) != 0 ]]; then
    echo "SKIP: not root: sizing the hugetlb pools (vm.nr_hugepages) needs root; CI runs this step as root"
    exit 77
fi
for f in "$LIB" "$PROBE"; do [[ -x $f || -f $f ]] || { echo "FAIL: $f is missing (make test builds it)"; exit 1; }; done

saved_nr=$(cat $NR)
saved_gig=$(cat $GIG 2>/dev/null || echo -)
tmpdir=$(mktemp -d /var/tmp/umalloc-hp.XXXXXX) || exit 2
restore() {
    mountpoint -q "$tmpdir/hugetlbfs" 2>/dev/null && umount "$tmpdir/hugetlbfs"
    echo "$saved_nr" >$NR
    [[ $saved_gig == - ]] || echo "$saved_gig" >$GIG 2>/dev/null
    rm -rf "$tmpdir"
}
trap restore EXIT
trap 'exit 130' INT TERM

fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
# val KEY FILE: the value of KEY=... in the probe's output
val() { sed -n "s/^$1=//p" "$2" | head -n 1; }
probe() { # OUT ENV... -- ARGS: run the probe under umalloc, stdout to OUT.out, stderr to OUT.err
    local out=$1; shift
    local -a envs=()
    while [[ $1 != -- ]]; do envs+=("$1"); shift; done
    shift
    env "${envs[@]}" LD_PRELOAD="$LIB" "$PROBE" "$@" >"$tmpdir/$out.out" 2>"$tmpdir/$out.err"
}
pool() { echo "$1" >$NR; [[ $(cat $NR) -ge $1 ]]; }

# ---- 1. 2 MiB pages ----------------------------------------------------------------------------
if ! pool 64; then
    msg="the kernel gave $(cat $NR) of 64 2 MiB pages (vm.nr_hugepages): no hugetlb memory to test with"
    if [[ ${CI:-} == true ]]; then echo "FAIL: $msg (CI=true)"; exit 1; fi
    echo "SKIP: $msg"
    exit 77
fi
probe 2m UMALLOC_HUGEPAGES=2M -- small 100 || bad "2M: the probe failed: $(cat "$tmpdir/2m.err")"
f0=$(val free_before "$tmpdir/2m.out") f1=$(val free_held "$tmpdir/2m.out") f2=$(val free_after "$tmpdir/2m.out")
vmas=$(val smaps_vmas_2m "$tmpdir/2m.out") fb=$(val fallbacks "$tmpdir/2m.out") m2=$(val mapped_2m "$tmpdir/2m.out")
echo "2M, 64 pages: HugePages_Free $f0 before, $f1 holding 100 MiB of small blocks, $f2 after the frees and the purge delay; $vmas VMAs of KernelPageSize 2048 kB; $fb fallbacks; $m2 B mapped on 2 MiB pages"
((f1 <= f0 - 45)) && ok "2M: HugePages_Free drops by $((f0 - f1)) pages while 100 MiB of small blocks are held" || bad "2M: HugePages_Free went from $f0 to only $f1"
((vmas >= 1)) && ok "2M: smaps shows KernelPageSize 2048 kB ($vmas VMAs)" || bad "2M: no VMA with KernelPageSize 2048 kB"
((m2 >= 100 << 20)) && ok "2M: the statistics count $m2 B on 2 MiB pages" || bad "2M: only $m2 B counted on 2 MiB pages"
((fb == 0)) && ok "2M: no fallback with a full pool" || bad "2M: $fb fallbacks with pages in the pool"
# what the program still holds: the probe's own segments (2 at most) of 2 pages each
((f2 >= f0 - 4)) && ok "2M: $((f2 - f1)) pages back in the pool after the frees and the purge delay" || bad "2M: only $((f2 - f1)) pages came back ($f2 free after, $f0 before)"

pool 0
probe 2m-empty UMALLOC_HUGEPAGES=2M UMALLOC_VERBOSE=1 -- small 100 || bad "2M, empty pool: the probe failed: $(cat "$tmpdir/2m-empty.err")"
fb=$(val fallbacks "$tmpdir/2m-empty.out") said=$(grep -c 'the pool has no 2 MiB pages' "$tmpdir/2m-empty.err")
echo "2M, empty pool: $fb fallbacks, said $said time(s) under UMALLOC_VERBOSE"
((fb > 0)) && ok "2M, empty pool: the run completes with $fb fallbacks counted" || bad "2M, empty pool: no fallback counted"
((said == 1)) && ok "2M, empty pool: said once" || bad "2M, empty pool: said $said times"

pool 64
probe reserve UMALLOC_HUGEPAGES=2M UMALLOC_RESERVE=64M -- small 20 || bad "reserve: the probe failed: $(cat "$tmpdir/reserve.err")"
r0=$(val rsvd_before "$tmpdir/reserve.out") m2=$(val mapped_2m "$tmpdir/reserve.out")
echo "UMALLOC_RESERVE=64M: HugePages_Rsvd $r0 before the first block; $m2 B on 2 MiB pages holding 20 MiB"
((r0 >= 24)) && ok "reserve: the pool's pages are the program's from the start ($r0 reserved)" || bad "reserve: only $r0 pages reserved at start"
((m2 == 64 << 20)) && ok "reserve: segments come from the reservation (2 MiB pages mapped: exactly 64 MiB)" || bad "reserve: $m2 B on 2 MiB pages, not the 64 MiB reserved"

# ---- 1. 1 GiB pages ----------------------------------------------------------------------------
# Without a 1 GiB page to give, 1G falls back to 2 MiB pages: the run goes on, counted.
if [[ $saved_gig == - ]] || { echo 0 >$GIG; true; }; then
    pool 64
    probe 1g-2m UMALLOC_HUGEPAGES=1G -- small 100 || bad "1G without 1 GiB pages: the probe failed: $(cat "$tmpdir/1g-2m.err")"
    fb=$(val fallbacks "$tmpdir/1g-2m.out") m2=$(val mapped_2m "$tmpdir/1g-2m.out") f0=$(val free_before "$tmpdir/1g-2m.out") f2=$(val free_after "$tmpdir/1g-2m.out")
    echo "1G, no 1 GiB page: $fb fallbacks, $m2 B on 2 MiB pages; HugePages_Free $f0 before, $f2 after"
    ((fb > 0 && m2 >= 100 << 20)) && ok "1G without 1 GiB pages: segments on 2 MiB pages, $fb fallbacks counted" || bad "1G without 1 GiB pages: $fb fallbacks, $m2 B on 2 MiB pages"
    ((f2 >= f0 - 4)) && ok "1G without 1 GiB pages: the 2 MiB pages came back" || bad "1G without 1 GiB pages: $f2 free after, $f0 before"
fi
if [[ $saved_gig == - ]]; then
    echo "!!! SKIP (1G): this kernel has no 1 GiB hugetlb pages (no $GIG: the CPU or the hypervisor lacks pdpe1gb)"
elif ! { echo 1 >$GIG; [[ $(cat $GIG) -ge 1 ]]; }; then
    echo "!!! SKIP (1G): the kernel could not give a 1 GiB page (memory too fragmented)"
else
    echo 1 >$GIG
    pool 0
    probe 1g UMALLOC_HUGEPAGES=1G -- small 100 || bad "1G: the probe failed: $(cat "$tmpdir/1g.err")"
    g0=$(val free1g_before "$tmpdir/1g.out") g1=$(val free1g_held "$tmpdir/1g.out") g2=$(val free1g_after "$tmpdir/1g.out") v1=$(val smaps_vmas_1g "$tmpdir/1g.out")
    echo "1G: free 1 GiB pages $g0 before, $g1 held, $g2 after; $v1 VMAs of KernelPageSize 1048576 kB"
    ((g1 < g0 && v1 >= 1)) && ok "1G: small blocks on a 1 GiB page" || bad "1G: no 1 GiB page used"
    ((g2 == g0)) && ok "1G: the page is back in the pool after the purge delay" || bad "1G: the page did not come back"
    echo 0 >$GIG
    probe 1g-empty UMALLOC_HUGEPAGES=1G -- small 100 || bad "1G, empty pool: the probe failed"
    fb=$(val fallbacks "$tmpdir/1g-empty.out")
    ((fb > 0)) && ok "1G, empty pool: the run completes with $fb fallbacks" || bad "1G, empty pool: no fallback counted"
fi
pool 0

# ---- 2. prefault, mlock ------------------------------------------------------------------------
probe touch0 UMALLOC_HUGEPAGES=none UMALLOC_PREFAULT=0 -- touch 1024 || bad "prefault: the probe failed"
probe touch1 UMALLOC_HUGEPAGES=none UMALLOC_PREFAULT=1 -- touch 1024 || bad "prefault: the probe failed"
e0=$(val touch_exceptions "$tmpdir/touch0.out") e1=$(val touch_exceptions "$tmpdir/touch1.out")
echo "UMALLOC_PREFAULT: malloc and first write of 1 GiB of 64 KiB blocks: $e0 page faults without, $e1 with (getrusage, which also counts the kernel's own populating: $(val touch_minflt "$tmpdir/touch0.out") and $(val touch_minflt "$tmpdir/touch1.out"))"
if ((e0 < 0)); then
    echo "!!! SKIP (prefault): no perf software events here (kernel.perf_event_paranoid?)"
elif ((e1 * 100 < e0)); then ok "prefault: $e1 faults against $e0 ($(awk "BEGIN{printf \"%.3f\", 100*$e1/$e0}") %)"
else bad "prefault: $e1 faults against $e0: not under 1 %"; fi

probe lock UMALLOC_MLOCK=1 -- lock 256 || bad "mlock: the probe failed"
lk=$(val vmlck_kb "$tmpdir/lock.out") cb=$(val committed_bytes "$tmpdir/lock.out") lb=$(val locked_bytes "$tmpdir/lock.out")
echo "UMALLOC_MLOCK=1, 256 MiB held: VmLck $lk kB; umalloc committed $cb B, counted locked $lb B"
((lk * 1024 >= cb && lb >= cb)) && ok "mlock: VmLck covers the committed memory" || bad "mlock: VmLck $lk kB < committed $cb B"

if command -v setpriv >/dev/null && command -v prlimit >/dev/null; then
    chmod o+rx "$tmpdir"
    prlimit --memlock=65536 setpriv --reuid=65534 --regid=65534 --clear-groups \
        env UMALLOC_MLOCK=1 LD_PRELOAD="$LIB" "$PROBE" lock 64 >"$tmpdir/lim.out" 2>"$tmpdir/lim.err"
    rc=$? lines=$(wc -l <"$tmpdir/lim.err")
    echo "UMALLOC_MLOCK=1 under RLIMIT_MEMLOCK=64 KiB (as nobody): exit $rc, stderr: $(cat "$tmpdir/lim.err")"
    ((rc == 0 && lines == 1)) && grep -q 'UMALLOC_MLOCK' "$tmpdir/lim.err" && ok "mlock over the limit: one line, a correct run" ||
        bad "mlock over the limit: exit $rc, $lines lines on stderr"
else
    echo "!!! SKIP (mlock limit): setpriv or prlimit missing (util-linux)"
fi

# ---- 4. um_map_file ------------------------------------------------------------------------------
file=$tmpdir/map-1g.bin
if head -c $((1 << 30)) /dev/urandom >"$file" 2>/dev/null; then
    probe map -- mapfile "$file" || bad "um_map_file: the probe failed: $(cat "$tmpdir/map.out" "$tmpdir/map.err")"
    echo "um_map_file: $(tr '\n' ' ' <"$tmpdir/map.out")"
    [[ $(val majflt_after_call "$tmpdir/map.out") == 0 ]] && ok "um_map_file: no major fault after the call" || bad "um_map_file: major faults after the call"
    [[ $(val err_missing "$tmpdir/map.out") == "2 ENOENT" ]] && [[ $(val err_flags "$tmpdir/map.out") == "22 EINVAL" ]] &&
        [[ $(val err_dir "$tmpdir/map.out") == "19 ENODEV" ]] && ok "um_map_file: errors say why" || bad "um_map_file: wrong errno"
    rm -f "$file"
else
    bad "um_map_file: could not write a 1 GiB file in $tmpdir"
fi

# on hugetlbfs: the file's own 2 MiB pages
mnt=$tmpdir/hugetlbfs
pool 4 # the file takes them all: a private mapping that reserved more would be refused
if mkdir -p "$mnt" && mount -t hugetlbfs -o pagesize=2M none "$mnt" 2>/dev/null; then
    probe hugefile -- hugefile "$mnt" || bad "um_map_file on hugetlbfs: the probe failed: $(cat "$tmpdir/hugefile.out" "$tmpdir/hugefile.err")"
    umount "$mnt"
    echo "um_map_file on hugetlbfs: $(tr '\n' ' ' <"$tmpdir/hugefile.out")"
    [[ $(val huge_kernel_page_kb "$tmpdir/hugefile.out") == 2048 && $(val huge_bad_bytes "$tmpdir/hugefile.out") == 0 ]] &&
        ok "um_map_file: a hugetlbfs file is mapped on its 2 MiB pages, contents intact" || bad "um_map_file on hugetlbfs: not on 2 MiB pages, or wrong contents"
else
    echo "!!! SKIP (um_map_file on hugetlbfs): could not mount hugetlbfs"
fi
pool 0

# ---- 5. bad values ---------------------------------------------------------------------------------
for kv in UMALLOC_HUGEPAGES=3M UMALLOC_RESERVE=lots; do
    env "$kv" LD_PRELOAD="$LIB" "$PROBE" touch 1 >/dev/null 2>"$tmpdir/bad.err"
    rc=$? n=$(wc -l <"$tmpdir/bad.err")
    if ((rc == 0 && n == 1)) && grep -q "${kv%%=*}=${kv#*=} is not valid: expected" "$tmpdir/bad.err"; then ok "$kv: $(cat "$tmpdir/bad.err")"
    else bad "$kv: exit $rc, stderr: $(cat "$tmpdir/bad.err")"; fi
done

echo
if ((fails)); then echo "FAIL: $fails check(s) failed"; exit 1; fi
echo "all huge-page checks passed"
