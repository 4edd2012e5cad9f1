#!/usr/bin/env bash
# scripts/test-numa.sh [--compare]   (the `numa` step of scripts/run-tests.sh)
#
# NUMA placement, measured by the kernel, in throw-away qemu guests with several nodes
# (scripts/vm-run.sh: the host's kernel and files, TCG, ~5-10 s a boot). One guest with 2 nodes
# x 768M and one with 4 nodes x 640M; in each, build/test/numa_place (test/numa/numa_place.c)
# runs under LD_PRELOAD=build/libumalloc.so and checks, with libnuma's numa_move_pages as the
# witness of where every page is (issue 12, acceptance lines 1-5):
#   place       a thread on each node allocates 256 MiB in sizes 16 B..1 MiB, a thread on the
#               next node writes it first: >= 99 % of each allocating thread's pages on its node
#   interleave  UMALLOC_NUMA_POLICY=interleave: each node's share of a 512 MiB block within 5 %
#   bind        UMALLOC_NUMA_POLICY=bind UMALLOC_NUMA_NODES=<last node>: every page there
#   preferred   UMALLOC_NUMA_POLICY=preferred on a node filled up to 64 MiB from full: 128 MiB
#               more allocates without failing, fills the node and spills to the others
#   move        a thread frees its 256 MiB on node 0 and moves to node 1: >= 99 % of the 256 MiB
#               it allocates there is on node 1
#   prodcons    (2 nodes) a producer on node 0, a consumer on node 1 freeing, 3 rounds of 2M
#               64-byte blocks: >= 99 % on node 0 every round, RSS after round 3 within 5 % of round 1
#               (each measured after malloc_trim: what is left is held, not kept for reuse)
#   migrate     um_numa_migrate moves a 64 MiB block to node 1, every page; um_numa_node_of agrees
#               with libnuma; um_malloc_onnode places its block on the node asked for
#   stats       per-node committed bytes (um_stats_get) against /proc/self/numa_maps: within 2 %
#   thread      um_numa_set_thread_policy: a thread on node 0 binds itself to the last node (100 %
#               of its next 32 MiB there), then back to local (>= 99 % on node 0)
#   assemble    (not NUMA: the guest's kernel) a large block assembled from cached pieces that
#               span several mappings is whole: kernels before 6.17 refuse such an mremap after
#               unmapping its target
# The guests get the host's transparent-huge-page mode (a Debian kernel boots with `always`,
# where a touched 4 KiB of a segment makes 2 MiB resident, which umalloc does not count).
#
# --compare: instead, run `place` and `move` under glibc, jemalloc, mimalloc, tcmalloc and umalloc
# in the same guests and print the table of docs/numa.md (not part of `make test`).
#
# Prints one PASS/FAIL line per check and a summary; exits 1 if a check failed. When a guest
# cannot start (vm-run.sh exits 125: no qemu, no kernel, not root to install them) this is a
# FAIL with CI=true and otherwise a SKIP, stated with its reason, and exit 77. Takes ~2 minutes on
# a quiet 2-core machine.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

lib=$PWD/build/libumalloc.so
prog=build/test/numa_place
dir=build/test-numa
compare=0 vm_t=200 case_t=100
[[ ${1:-} == --compare ]] && compare=1 vm_t=1200 case_t=400
npass=0 nfail=0
pass() { echo "PASS: $*"; npass=$((npass + 1)); }
fail() { echo "FAIL: $*"; nfail=$((nfail + 1)); }
summary() { echo "test-numa: $npass passed, $nfail failed"; ((nfail == 0)); exit $?; }

[[ -f $lib ]] || { fail "$lib is missing (run: make all)"; summary; }
[[ -x $prog ]] || { fail "$prog is missing (run: make $prog; it needs libnuma-dev)"; summary; }
rm -rf "$dir" && mkdir -p "$dir" || exit 2
thp=$(sed -n 's/.*\[\(.*\)\].*/\1/p' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)

# The other allocators of --compare, where installed (scripts/deps.sh bench installs them all).
declare -A alloc=([glibc]="" [umalloc]=$lib)
for a in jemalloc:/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 mimalloc:/usr/lib/x86_64-linux-gnu/libmimalloc.so.2 \
         tcmalloc:/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4; do
    [[ -f ${a#*:} ]] && alloc[${a%%:*}]=${a#*:}
done

# guest_script NODES: what runs in the guest, as root, in this directory. Each case leaves
# NAME.out and NAME.rc in $dir/nNODES.
guest_script() {
    local n=$1 last=$(($1 - 1)) out=$dir/n$1
    mkdir -p "$out"
    {
        echo "cd $PWD || exit 1"
        [[ -n $thp ]] && echo "echo $thp > /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null"
        echo 'run() { local name=$1; shift; local t0=$(date +%s%N)'
        echo '  timeout '$case_t' env "$@" >'"$out"'/$name.out 2>&1; echo $? >'"$out"'/$name.rc'
        echo '  echo "$name: $(( ($(date +%s%N) - t0) / 1000000 )) ms"; }'
        echo "numactl --hardware | head -n 1"
        if ((compare)); then
            for a in "${!alloc[@]}"; do
                local pre=()
                [[ -n ${alloc[$a]} ]] && pre=(LD_PRELOAD="${alloc[$a]}")
                echo "run place-$a ${pre[*]} $prog place 256 0"
                echo "run move-$a ${pre[*]} $prog move 256 0"
            done
        else
            local L="LD_PRELOAD=$lib"
            echo "run place $L $prog place 256 99"
            echo "run interleave $L UMALLOC_NUMA_POLICY=interleave $prog interleave 512 5"
            echo "run bind $L UMALLOC_NUMA_POLICY=bind UMALLOC_NUMA_NODES=$last $prog bind $last 64"
            echo "run preferred $L UMALLOC_NUMA_POLICY=preferred UMALLOC_NUMA_NODES=$last $prog preferred $last 128"
            echo "run move $L $prog move 256 99"
            ((n == 2)) && echo "run prodcons $L $prog prodcons 2000000 3"
            echo "run migrate $L $prog migrate 64"
            echo "run stats $L $prog stats 128 2"
            echo "run thread $L $prog thread 32"
            echo "run assemble $L UMALLOC_PURGE_DELAY_MS=10s $prog assemble"
        fi
    } >"$dir/guest-$n.sh"
}

# boot NODES MEM: run the guest; returns vm-run.sh's status.
boot() {
    local n=$1 mem=$2 t0=$SECONDS rc
    guest_script "$n"
    echo "booting a guest: $n nodes x $mem (THP: ${thp:-kernel default})"
    scripts/vm-run.sh --nodes "$n" --mem-per-node "$mem" -t $vm_t -- bash "$dir/guest-$n.sh" >"$dir/vm-$n.out" 2>"$dir/vm-$n.err"
    rc=$?
    sed 's/^/  guest: /' "$dir/vm-$n.out"
    echo "guest run ($n nodes): exit $rc after $((SECONDS - t0)) s"
    if ((rc == 125)) && [[ ! -s $dir/vm-$n.out ]]; then
        sed 's/^/  vm-run: /' "$dir/vm-$n.err" | tail -n 20
        why=$(grep -m1 -E 'missing packages|no readable|cannot|did not boot' "$dir/vm-$n.err" || tail -n 1 "$dir/vm-$n.err")
        if [[ ${CI:-} == true ]]; then
            fail "the $n-node guest could not start (CI=true, so this fails): ${why:-vm-run.sh exited 125}"
            summary
        fi
        echo "SKIP: the $n-node guest could not start, the NUMA tests did not run: ${why:-vm-run.sh exited 125}"
        exit 77
    fi
    if ((rc != 0)); then
        sed 's/^/  vm-run: /' "$dir/vm-$n.err" | tail -n 30
        fail "$n nodes: vm-run.sh exited $rc$( ((rc == 124)) && echo " (timed out after $vm_t s)")"
    fi
}

# The checks' own PASS/FAIL lines, each case's exit status, and no umalloc complaint.
collect() {
    local n=$1 f name rc
    for f in "$dir/n$n"/*.out; do
        [[ -e $f ]] || { fail "$n nodes: no case ran"; return; }
        name=$(basename "$f" .out)
        rc=$(cat "$dir/n$n/$name.rc" 2>/dev/null)
        grep -v -E '^(PASS|FAIL): ' "$f" | sed "s/^/  $n nodes $name: /"
        while IFS= read -r line; do
            if [[ $line == PASS:* ]]; then pass "$n nodes: ${line#PASS: }"; else fail "$n nodes: ${line#FAIL: }"; fi
        done < <(grep -E '^(PASS|FAIL): ' "$f")
        if ((compare)); then
            [[ $rc == 0 ]] || fail "$n nodes: $name exited ${rc:-none}"
        elif [[ $rc != 0 ]] && ! grep -q '^FAIL: ' "$f"; then
            fail "$n nodes: $name exited ${rc:-none} (124: over $case_t s)"
        fi
        if [[ $name != *-* || $name == *-umalloc ]] && grep -q 'cannot be preloaded' "$f"; then
            fail "$n nodes: $name: the library was not loaded: $(grep -m1 'cannot be preloaded' "$f")"
        fi
        if [[ $name != *-* || $name == *-umalloc ]] && grep -q 'umalloc: ' "$f"; then
            fail "$n nodes: $name: umalloc complained: $(grep -m1 'umalloc: ' "$f")"
        fi
    done
}

table() {   # the placement table of docs/numa.md, from the --compare results
    echo
    echo "| allocator | 2 nodes: worst thread's pages on its node | 4 nodes: worst thread | 2 nodes: after a move, on the new node | 4 nodes: after a move |"
    echo "|---|---|---|---|---|"
    for a in glibc jemalloc mimalloc tcmalloc umalloc; do
        [[ -n ${alloc[$a]+x} ]] || continue
        local row="| $a"
        for k in place move; do
            for n in 2 4; do
                v=$(sed -n "s/^RESULT: ${k}_\(min_\)\{0,1\}pct //p" "$dir/n$n/$k-$a.out" 2>/dev/null)
                row+=" | ${v:-?} %"
            done
        done
        echo "$row |"
    done
}

boot 2 768M
collect 2
boot 4 640M
collect 4
((compare)) && table
summary
