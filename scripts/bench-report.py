#!/usr/bin/env python3
"""Writes docs/benchmarks.md (and its charts in docs/img/) from the raw results of
scripts/bench.sh and scripts/bench-instr.sh. Python standard library only; charts by gnuplot.

    scripts/bench-report.py --results build/bench/results.csv --instr build/bench/instr.csv \
        --meta build/bench/meta.txt --out docs/benchmarks.md --img docs/img

Also prints the wall-time table to stdout.
"""
import argparse
import csv
import math
import os
import shutil
import statistics
import subprocess
import sys

ORDER = ["glibc", "jemalloc", "mimalloc", "tcmalloc", "umalloc", "umalloc-nostats", "umalloc-secure"]
COLORS = {"glibc": "#7f7f7f", "jemalloc": "#1f77b4", "mimalloc": "#2ca02c",
          "tcmalloc": "#ff7f0e", "umalloc": "#d62728", "umalloc-nostats": "#9467bd",
          "umalloc-secure": "#8c564b"}

DESCRIPTIONS = {
    "larson": "Larson & Krishnan server simulation: each thread replaces random blocks (8..1000 B) "
              "in a slot array; every round new threads take over the previous threads' arrays, so "
              "blocks are freed by other, newer threads",
    "xmalloc": "xmalloc producer/consumer: one thread allocates (8..512 B) in batches, the other "
               "checks and frees them; every block is freed by another thread",
    "cache-scratch": "Hoard's cache-scratch (passive false sharing): each thread frees an 8-byte "
                     "object the main thread allocated next to the others', then mallocs, writes "
                     "and frees 8-byte objects",
    "cache-thrash": "Hoard's cache-thrash (active false sharing): threads malloc, write and free "
                    "8-byte objects; slow if the allocator hands one cache line to two threads",
    "churn-small": "churn of small blocks (8..1024 B, log-uniform) with power-law lifetimes "
                   "(density ~ 1/lifetime), every block filled and checked",
    "churn-medium": "churn of medium blocks (1..64 KiB, log-uniform) with power-law lifetimes, "
                    "every block filled and checked",
    "realloc": "1000 buffers grown by realloc in small random steps to 1 KiB..256 KiB, checked "
               "and freed when full",
    "realloc-small": "8000 strings and buffers grown by realloc in small random steps to 1..8 KiB, "
                     "checked and freed when full: sizes that cross from small pages to medium ones",
    "large": "large blocks (256 KiB..64 MiB, log-uniform), 4 live per thread, every page written",
    "buffers": "a buffer for each request: a big block allocated, a word written in each of its "
               "pages, checked and freed (1t: 128 KiB, one at a time; 2t: 64..448 KiB, log-uniform, "
               "2 live per thread)",
    "buffers-1m": "a buffer of 1..1.125 MiB for each request, two threads: allocated, a word written "
                  "in every 16th page, checked and freed (a compression window, a message body): "
                  "blocks past the size where they are mapped on their own",
    "buffers-8m": "buffers of 1..8 MiB (log-uniform), two live, each replaced by one of another size: "
                  "allocated, a word written in each of its pages, checked and freed (blocks that "
                  "rarely fit the memory the last ones left)",
    "tree": "unbalanced binary search tree of 100k nodes (node + payload string each) built, "
            "walked and torn down, repeatedly",
    "threadchurn": "a thread per request: threads started one by one (1by1) or 8 at a time (batch8), "
                   "each callocs 128 B, swaps it into one of 1000 shared slots and frees the block it "
                   "took out: per-thread allocator state set up and torn down thousands of times",
    "threadchurn-work": "threads per request with a working set, 4 at a time (a pool recycled "
                        "after each job): each allocates 200 blocks of 64 B..256 KiB (log-uniform, "
                        "about 6 MiB), writes them whole, frees them and exits with nothing live: "
                        "whether the next batch reuses what the last one emptied",
    "larson-sized": "the larson server simulation, every block freed with its size (free_sized, "
                    "or the allocator's own sized free: sdallocx, mi_free_size, tc_free_sized)",
    "mstress": "mimalloc-bench-style mstress: mixed sizes (mostly 16..256 B, some up to 8 KiB, a few "
               "16..384 KiB) allocated, realloc'ed, freed and passed between threads through a shared "
               "array; new threads every round",
    "malloc-large": "mimalloc-bench-style malloc-large: live buffers of 5..25 MiB replaced at random, "
                    "each zeroed in full like std::vector<char>(n)",
    "rptest": "rpmalloc-benchmark pattern: batches of 64 blocks of 8..16000 B (biased to small) "
              "allocated by one thread and freed by the next one in a ring",
    "alloc-test": "alloc-test (OLogN/ITHare) pattern: a random slot of a fixed pool is freed if "
                  "full, else filled with a block of skewed random size (8 B..4 KiB, 1 in 128 up to "
                  "64 KiB); the live set stays flat",
    "ttest": "ptmalloc's t-test1 pattern: each thread empties a random 0..29 of its 400 bins, then "
             "fills a random 0..29 with a block of uniform random size 1..10000 B (malloc; some "
             "calloc, realloc, memalign), a byte every 2047 written and checked; 20 threads one "
             "after another in each of 2 places",
    "manythreads": "many more threads than CPUs: 64 threads started at once, each running the "
                   "alloc-test pattern on a pool of 512 slots of its own (8..2048 B, 1 in 128 up to "
                   "64 KiB), then freeing it and exiting: per-thread state set up, filled and torn "
                   "down while dozens of other threads live",
    "steady-64": "the steady pattern with every block 64 B, 20000 slots per thread: one size class, "
                 "its pages all but full, each free landing at random among them",
    "steady": "a working set that stays full while its blocks are replaced in random order (a cache, "
              "a hash table; glibc's bench-malloc-thread): a random slot's block freed, another "
              "allocated in its place (log-uniform 32..512 B in 30000 slots; 2t: 4 B..32 KiB in "
              "1024 slots per thread, as bench-malloc-thread)",
    "aligned": "the steady pattern through posix_memalign: alignments 32, 64 or 128 B, sizes "
               "16..2048 B, 2000 slots (C++ alignas types, Rust's allocator for alignments above 16)",
    "simple": "glibc's bench-malloc-simple pattern: a batch of blocks of one size allocated, "
              "tagged and freed in allocation order, round after round, for 16 B x 1600, 64 B x 1600, "
              "256 B x 400, 1 KiB x 100 and 4 KiB x 25 (about 100 KB a batch, each spanning more than "
              "one page of its class)",
    "sh6bench": "sh6bench-style: batches of 2000 objects of 1..1000 B, half freed newest first, "
                "half oldest first",
    "sh8bench": "sh8bench-style: sh6bench's batches, the oldest-first half freed by the next thread "
                "of a ring",
    "vector": "dynamic arrays of 8-byte elements grown one append at a time by realloc (factors "
              "1.125 as CPython's lists, 1.5, 2), 4 per thread to 1k..400k elements, checked, freed "
              "and built again every round",
    "cxx": "a C++ program: std::map and std::unordered_map keyed by 20..67-character strings "
           "(beyond std::string's inline buffer), entries inserted, appended to, erased and "
           "replaced at random, batches of shared_ptr'd objects built and dropped: every "
           "allocation through operator new and delete",
    "phases": "a program in phases (a compiler's passes, a batch job's stages): each builds 24 MiB "
              "of objects of one typical size (log-uniform 16 B..256 KiB, to 1.25x), writes them "
              "whole, then frees them all in random order before the next phase builds another "
              "size: whether freed memory serves the next size, or fresh memory is faulted in",
    "spawn": "140 short processes run one after another, each with the allocator preloaded: 400 "
             "mallocs of 16 B..4 KiB and a growing line buffer, then exit: the allocator's load, "
             "set-up and exit paid per process, as in a shell script or a build",
    "forkheap": "a program whose 4 threads each hold 8 MiB of small objects forks 30 children one "
                "after another, each doing what a child does before exec (100 of the parent's "
                "blocks freed, 100 strings allocated) and exiting; then the threads free their "
                "blocks: whether a child copies the parent's memory, and what the parent pays after",
    "python": "python3 (PYTHONMALLOC=malloc) on an object-heavy script: objects with dicts and "
              "lists, an index, sorting, strings, JSON",
    "sqlite": "sqlite3 on an in-memory database: bulk inserts, two indexes, joins, grouping, "
              "sorting, updates, deletes",
    "redis": "redis-server under redis-benchmark on 127.0.0.1 (set, get, incr, lpush, lpop, sadd, "
             "hset, spop, zadd; 16 clients, pipeline 16): wall = client run, CPU and RSS = server",
}


def family(workload):
    for k in sorted(DESCRIPTIONS, key=len, reverse=True):
        if workload == k or workload.startswith(k + "-"):
            return k
    return workload


def read_meta(path):
    meta = {}
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    meta[k] = v
    return meta


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    if not xs:
        return None
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def load_results(path):
    rows = []
    with open(path) as f:
        for r in csv.DictReader(f):
            rows.append(r)
    workloads, allocs = [], []
    for r in rows:
        if r["workload"] not in workloads:
            workloads.append(r["workload"])
        if r["allocator"] not in allocs:
            allocs.append(r["allocator"])
    allocs.sort(key=lambda a: ORDER.index(a) if a in ORDER else 99)
    # samples[metric][workload][alloc] = [values of ok runs]
    samples = {m: {w: {a: [] for a in allocs} for w in workloads} for m in ("wall", "cpu", "rss")}
    # by_round[metric][workload][alloc] = {round: value}: the runs of one round ran one after
    # another, minutes apart from other rounds (see paired_worst)
    by_round = {m: {w: {a: {} for a in allocs} for w in workloads} for m in ("wall", "cpu", "rss")}
    status = {w: {a: {"ok": 0, "fail": 0, "skipped": 0} for a in allocs} for w in workloads}
    threads = {}
    for r in rows:
        w, a = r["workload"], r["allocator"]
        threads[w] = r["threads"]
        st = r["status"] if r["status"] in ("ok", "fail", "skipped") else "fail"
        status[w][a][st] += 1
        if st != "ok":
            continue
        samples["wall"][w][a].append(float(r["wall_s"]))
        samples["cpu"][w][a].append(float(r["cpu_s"]))
        samples["rss"][w][a].append(float(r["maxrss_kb"]) / 1024.0)
        for m in ("wall", "cpu", "rss"):
            by_round[m][w][a][r["run"]] = samples[m][w][a][-1]
    return workloads, allocs, samples, status, threads, by_round


def medians(samples, status):
    med = {}
    for m, per_w in samples.items():
        med[m] = {}
        for w, per_a in per_w.items():
            med[m][w] = {}
            for a, vals in per_a.items():
                # a pair with any failed run has no result: a crash is not a time
                ok = vals and status[w][a]["fail"] == 0 and status[w][a]["skipped"] == 0
                med[m][w][a] = statistics.median(vals) if ok else None
    return med


def paired_worst(rounds, peers):
    """umalloc against each peer, round by round: the median over the rounds of umalloc's run /
    the peer's run of the same round, and the largest of those over the peers, with its peer.
    This machine's speed drifts in phases (bimodal: every allocator's runs of a phase are
    slower alike); the runs of one round are seconds apart, so a ratio within a round cancels
    the phase, where a ratio of two medians takes whichever phases each allocator's middle run
    fell in. Only rounds in which both runs succeeded count."""
    um = rounds.get("umalloc", {})
    worst = None
    for a in peers:
        pr = rounds.get(a, {})
        ratios = [um[k] / pr[k] for k in um if k in pr and pr[k] > 0]
        if not ratios:
            continue
        r = statistics.median(ratios)
        if worst is None or r > worst[0]:
            worst = (r, a)
    return worst


def spread(vals):
    """median absolute deviation of the runs, in percent of their median (robust to one
    run that another process on the machine slowed down)"""
    if len(vals) < 2:
        return None
    m = statistics.median(vals)
    return 100.0 * statistics.median(abs(v - m) for v in vals) / m if m > 0 else None


def fmt_val(metric, v):
    if v is None:
        return "FAIL"
    if metric == "rss":
        return "%.1f" % v if v < 100 else "%.0f" % v
    return "%.3f" % v if v < 10 else "%.2f" % v


def table(metric, unit, workloads, allocs, med, samples, status, by_round=None):
    """Markdown table: per workload the median per allocator with its ratio to glibc, the
    best allocator, umalloc against the best peer (and, given by_round, against every peer
    round by round: paired_worst), and the run-to-run spread."""
    has_glibc = "glibc" in allocs
    has_um = "umalloc" in allocs
    peers = [a for a in allocs if not a.startswith("umalloc")]
    head = ["workload"] + ["%s (%s)" % (a, unit) for a in allocs] + ["best"]
    if has_um:
        head.append("umalloc / best peer")
        if by_round is not None:
            head.append("umalloc / each peer, per round")
    head.append("spread")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    ratios = {a: [] for a in allocs}
    um_vs_best = []
    for w in workloads:
        row = med[metric][w]
        valid = {a: v for a, v in row.items() if v is not None}
        best = min(valid, key=valid.get) if valid else None
        cells = [w]
        g = row.get("glibc") if has_glibc else None
        for a in allocs:
            v = row[a]
            if v is None:
                n_fail = status[w][a]["fail"]
                cells.append("**FAIL**" if n_fail else "-")
                continue
            s = fmt_val(metric, v)
            if g:
                r = v / g
                ratios[a].append(r)
                s += " (%.2f×)" % r
            if a == best:
                s = "**" + s + "**"
            cells.append(s)
        cells.append(best or "-")
        if has_um:
            pv = {a: row[a] for a in peers if row[a] is not None}
            if row["umalloc"] is not None and pv:
                bp = min(pv, key=pv.get)
                r = row["umalloc"] / pv[bp]
                um_vs_best.append(r)
                cells.append("%.2f× (%s)" % (r, bp))
            else:
                cells.append("-")
            if by_round is not None:
                ok_peers = [a for a in peers if row[a] is not None]
                pw = paired_worst(by_round[w], ok_peers) if row["umalloc"] is not None else None
                cells.append("%.2f× (%s)" % pw if pw else "-")
        sp = [spread(samples[metric][w][a]) for a in allocs]
        sp = [x for x in sp if x is not None]
        cells.append("%.0f%%" % max(sp) if sp else "-")
        lines.append("| " + " | ".join(cells) + " |")
    # geometric means of the ratios
    cells = ["**geometric mean, ratio to glibc**"]
    for a in allocs:
        gm = geomean(ratios[a]) if has_glibc else None
        cells.append("**%.2f×**" % gm if gm else "-")
    cells.append("")
    if has_um:
        gm = geomean(um_vs_best)
        cells.append("**%.2f×**" % gm if gm else "-")
        if by_round is not None:
            cells.append("")
    cells.append("")
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines), {a: geomean(ratios[a]) for a in allocs}, geomean(um_vs_best)


def text_table(workloads, allocs, med):
    out = ["%-18s" % "median wall (s)" + "".join("%10s" % a for a in allocs)]
    for w in workloads:
        out.append("%-18s" % w + "".join("%10s" % fmt_val("wall", med["wall"][w][a]) for a in allocs))
    return "\n".join(out)


def gnuplot(script, cwd):
    if not shutil.which("gnuplot"):
        return False
    p = subprocess.run(["gnuplot"], input=script, text=True, cwd=cwd,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        sys.stderr.write("bench-report: gnuplot failed:\n" + p.stderr)
        return False
    return True


def bar_chart(img_dir, name, title, ylabel, cats, allocs, values, logscale=False, ref_line=None,
              width=1400):
    """Clustered bars: one cluster per category, one bar per allocator.
    values[cat][alloc] = number or None."""
    dat = os.path.join(img_dir, name + ".dat")
    with open(dat, "w") as f:
        for c in cats:
            f.write('"%s" ' % c + " ".join(
                ("%.6g" % values[c][a]) if values[c].get(a) is not None else "NaN" for a in allocs) + "\n")
    plots = []
    for i, a in enumerate(allocs):
        plots.append("'%s.dat' using %d:xtic(1) title '%s' lc rgb '%s'" % (name, i + 2, a, COLORS.get(a, "#000000")))
    ref = ""
    if ref_line is not None:
        ref = "set arrow from graph 0, first %g to graph 1, first %g nohead dt 2 lw 1 lc rgb '#444444' front\n" % (ref_line, ref_line)
    script = f"""
set terminal pngcairo size {width},560 font 'DejaVu Sans,10' noenhanced
set output '{name}.png'
set title '{title}'
set ylabel '{ylabel}'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.9 border -1
set boxwidth 0.9
set xtics rotate by 30 right scale 0
set key top left horizontal reverse Left samplen 2
set grid ytics
set yrange [0:*]
{"set logscale y; set yrange [*:*]" if logscale else ""}
{ref}
plot {", ".join(plots)}
"""
    ok = gnuplot(script, img_dir)
    os.remove(dat)
    return ok


TLB_TITLE = "## TLB-bound workloads and huge pages"
TLB_WORKLOADS = [("chase", "random pointer chase over 512 MiB of 64-byte nodes"),
                 ("hash", "random lookups in a 5 M-entry chained hash table")]


def tlb_section(csv_path, meta_path):
    """The section of scripts/bench-tlb.sh's runs (issue 13): lines of Markdown, or [] without data."""
    if not os.path.exists(csv_path):
        return []
    meta = read_meta(meta_path) if os.path.exists(meta_path) else {}
    runs = {}
    configs = []
    with open(csv_path) as f:
        for r in csv.DictReader(f):
            if r["config"] not in configs:
                configs.append(r["config"])
            if r["status"] != "ok":
                continue
            d = runs.setdefault((r["workload"], r["config"]), {"time": [], "total": [], "rss": [], "flt": []})
            d["time"].append(float(r["time_s"]))
            d["total"].append(float(r["time_s"]) + float(r["build_s"]))
            d["rss"].append(int(r["rss_kb"]) / 1024.0)
            d["flt"].append(int(r["minflt"]) + int(r["majflt"]))
    med = lambda v: statistics.median(v) if v else None
    L = [TLB_TITLE, ""]
    L.append("Generated from `build/bench/tlb.csv` by `scripts/bench-report.py` (runs: `%s`, part of `make bench`; "
             "%s runs each, interleaved in rotated order, medians shown; %s; took %s s). "
             "Random phase: the time of the chase or the lookups alone; run: the set-up (every malloc, "
             "the page faults of a first touch, linking or inserting) plus the random phase (`bench/tlb.c`); "
             "ratios are to umalloc with 4 KiB pages. On this shared 2-core VM the random phase is bimodal "
             "(the same chase takes one of two times, up to 1.7 times apart, in every configuration, with "
             "the load of the other core): its median over a few runs says more about the machine than about the pages, so the best "
             "of the runs is shown too. Peak memory is the "
             "process's peak RSS with hugetlb pages counted (`VmRSS + HugetlbPages` at the workload's peak: "
             "the kernel's RSS leaves hugetlb pages out); faults are minor + major page faults of the whole "
             "process (getrusage). Kernel %s, THP `%s`; %s." % (
                 meta.get("command", "scripts/bench-tlb.sh"), meta.get("runs", "?"), meta.get("date", "?"),
                 meta.get("duration_s", "?"), meta.get("kernel", "?"), meta.get("thp", "?"),
                 meta.get("pools", "?")))
    L.append("")
    if meta.get("have_1g") == "0":
        L.append("**1 GiB pages: not measured.** This kernel has no 1 GiB hugetlb pool (the virtual CPU lacks "
                 "`pdpe1gb`), so `UMALLOC_HUGEPAGES=1G` and mimalloc's reserved 1 GiB pages are left out.")
        L.append("")
    for w, what in TLB_WORKLOADS:
        base = runs.get((w, "umalloc-4k"))
        b = med(base["time"]) if base else None
        bt = med(base["total"]) if base else None
        bm = min(base["time"]) if base else None
        L.append("### %s: %s" % (w, what))
        L.append("")
        L.append("`bench/tlb %s`" % meta.get("args_" + w, ""))
        L.append("")
        L.append("| configuration | random phase (s) | ratio | best of the runs (s) | ratio | run (s) | ratio | peak memory (MiB) | page faults |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for c in configs:
            d = runs.get((w, c))
            if not d:
                L.append("| %s | FAIL | | | | | | | |" % c)
                continue
            t, tt, tm = med(d["time"]), med(d["total"]), min(d["time"])
            L.append("| %s | %.3f | %s | %.3f | %s | %.2f | %s | %.0f | %d |" % (
                c, t, ("%.2fx" % (t / b)) if b else "-", tm, ("%.2fx" % (tm / bm)) if bm else "-",
                tt, ("%.2fx" % (tt / bt)) if bt else "-", med(d["rss"]), med(d["flt"])))
        L.append("")
    L.append("Configurations:")
    L.append("")
    for c in configs:
        L.append("- `%s`: `%s`" % (c, meta.get("config_" + c, "?")))
    L.append("")
    return L


def splice_tlb(md_path, section):
    """Put the TLB section into an existing report, in place of the old one (before "## Workloads")."""
    with open(md_path) as f:
        text = f.read()
    if TLB_TITLE in text:
        head, rest = text.split(TLB_TITLE, 1)
        nxt = rest.find("\n## ")
        text = head + (rest[nxt + 1:] if nxt >= 0 else "")
    at = text.find("## Workloads")
    block = "\n".join(section) + "\n"
    text = text[:at] + block + text[at:] if at >= 0 else text.rstrip("\n") + "\n\n" + block
    with open(md_path, "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default="build/bench/results.csv")
    ap.add_argument("--instr", default="build/bench/instr.csv")
    ap.add_argument("--cost", default="build/bench/stats-cost.csv")
    ap.add_argument("--meta", default="build/bench/meta.txt")
    ap.add_argument("--out", default="docs/benchmarks.md")
    ap.add_argument("--img", default="docs/img")
    ap.add_argument("--tlb", default="build/bench/tlb.csv")
    ap.add_argument("--tlb-meta", default="build/bench/tlb-meta.txt")
    ap.add_argument("--notes", default="docs/bench-notes.md",
                    help="hand-written measurements behind design choices, copied in as they are")
    ap.add_argument("--tlb-only", action="store_true",
                    help="only replace the TLB section of an existing --out (after scripts/bench-tlb.sh alone)")
    args = ap.parse_args()

    if args.tlb_only:
        section = tlb_section(args.tlb, args.tlb_meta)
        if not section:
            sys.exit("bench-report: no %s" % args.tlb)
        splice_tlb(args.out, section)
        shutil.copyfile(args.tlb, os.path.join(os.path.dirname(os.path.abspath(args.out)), "bench-tlb.csv"))
        print("bench-report: wrote the TLB section of %s" % args.out)
        return

    meta = read_meta(args.meta)
    workloads, allocs, samples, status, threads, by_round = load_results(args.results)
    med = medians(samples, status)
    os.makedirs(args.img, exist_ok=True)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    img_rel = os.path.relpath(os.path.abspath(args.img), out_dir)

    print(text_table(workloads, allocs, med))

    # --- charts ---
    charts = {}
    def norm(metric):
        vals = {}
        for w in workloads:
            g = med[metric][w].get("glibc")
            vals[w] = {a: (med[metric][w][a] / g if (g and med[metric][w][a] is not None) else None)
                       for a in allocs}
        return vals
    if "glibc" in allocs:
        if bar_chart(args.img, "bench-time", "Median wall time per workload, relative to glibc (lower is better)",
                     "wall time / glibc", workloads, allocs, norm("wall"), ref_line=1.0):
            charts["time"] = "bench-time.png"
        if bar_chart(args.img, "bench-cpu", "Median CPU time (user+sys) per workload, relative to glibc (lower is better)",
                     "CPU time / glibc", workloads, allocs, norm("cpu"), ref_line=1.0):
            charts["cpu"] = "bench-cpu.png"
    if bar_chart(args.img, "bench-rss", "Median peak RSS per workload, MiB, log scale (lower is better)",
                 "peak RSS (MiB)", workloads, allocs,
                 {w: {a: med["rss"][w][a] for a in allocs} for w in workloads}, logscale=True):
        charts["rss"] = "bench-rss.png"

    instr = []
    if args.instr and os.path.exists(args.instr):
        with open(args.instr) as f:
            instr = list(csv.DictReader(f))
    instr_allocs = sorted({r["allocator"] for r in instr}, key=lambda a: ORDER.index(a) if a in ORDER else 99)
    tests = [t for t in ("pair", "ring", "rand", "batch") if any(r["test"] == t for r in instr)]
    tnames = {"pair": "malloc(32)+free", "ring": "ring of 64, 32 B", "rand": "ring of 64, 8..512 B",
              "batch": "batches of 25, 32 KiB"}
    ivals = {tnames[t]: {} for t in tests}
    for r in instr:
        if r["test"] in tnames and r.get("alloc_instr_per_op"):
            ivals[tnames[r["test"]]][r["allocator"]] = float(r["alloc_instr_per_op"])
    if instr and bar_chart(args.img, "bench-instr", "Instructions per malloc+free in the allocator (callgrind, lower is better)",
                           "instructions per op", [tnames[t] for t in tests], instr_allocs, ivals, width=900):
        charts["instr"] = "bench-instr.png"

    # --- the page ---
    quick = meta.get("quick") == "1"
    runs = meta.get("runs", "?")
    L = []
    L.append("# Benchmarks")
    L.append("")
    L.append("<!-- generated by scripts/bench-report.py from build/bench/results.csv; do not edit by hand -->")
    L.append("")
    L.append("Made by `%s` on %s, in %s. "
             "Regenerate with `make bench` (%s runs per pair, one per round of the run order below, "
             "then the instruction counts and the TLB pair) "
             "or `make bench QUICK=1` (smaller sizes, 3 runs, under 2 minutes; "
             "rougher numbers)." % (
                 meta.get("command", "make bench"), meta.get("date", "?"),
                 "%d:%02d" % divmod(int(meta.get("duration_s", "0")), 60), runs))
    L.append("")
    if quick:
        L.append("> **This is a QUICK run** (`QUICK=1`): small sizes and %s runs per pair. Use `make bench` "
                 "for the numbers to quote." % runs)
        L.append("")
    if meta.get("umalloc_missing") == "1" or "umalloc" not in allocs:
        L.append("> **umalloc is missing from these results**: build/libumalloc.so was not there when they "
                 "were made. `make bench` builds it first.")
        L.append("")
    failed = [(w, a) for w in workloads for a in allocs if status[w][a]["fail"]]
    if failed:
        L.append("> **Failed runs** (crash, wrong checksum or timeout; no time is reported for them): " +
                 ", ".join("%s under %s" % (w, a) for w, a in failed) +
                 ". Logs: build/bench/logs/*.failed.log.")
        L.append("")

    L.append("## Method")
    L.append("")
    L.append("- The same binaries run under every allocator: glibc is the C library's own malloc (no preload); "
             "jemalloc, mimalloc, tcmalloc and umalloc are loaded with `LD_PRELOAD`. "
             "(redis-server is linked with jemalloc, so for its glibc runs libc.so.6 itself is preloaded to put "
             "glibc's malloc first.)")
    n = len(allocs)
    williams = [0]
    i = 1
    while len(williams) < n:
        williams.append(i)
        if len(williams) < n:
            williams.append(n - i)
        i += 1
    order = lambda k: " ".join(allocs[(w + k) % n] for w in williams)
    L.append("- Runs are interleaved allocator by allocator, in an order that changes each round (%s; then %s; ...: "
             "a Williams design, in which each allocator runs right after each other one once in %d rounds), "
             "so that drift on this shared machine hits all alike and no allocator always follows the same one "
             "(on this VM a run's page faults cost more or less depending on what the previous process freed: "
             "see scripts/bench.sh); the real programs (python, sqlite, redis) first get one unrecorded warm-up run. Every number is the **median of %s runs**." % (
                 order(0), order(1), n, runs))
    L.append("- `bench/runner.c` forks and execs each run and reads `wait4()`'s rusage: wall time (monotonic clock, "
             "fork to reap), CPU time = user + sys, peak RSS = `ru_maxrss`. For redis the wall time is the "
             "redis-benchmark client's run; CPU time and peak RSS are the server's.")
    L.append("- Every workload checks its own results (tags written into each block and checked before free, "
             "checksums) and prints a checksum line; a run that exits non-zero, dies, times out or prints a "
             "checksum other than glibc's (its first run; the warm-up run's for the real programs) counts as **FAIL**.")
    L.append("- A multi-threaded workload shares the total work given in its arguments among its threads. "
             "Sizes are set so that each run takes roughly 0.3 to 1.5 s under glibc; the `-2t` rows mostly "
             "do more work than the `-1t` rows (see *Workloads*), so compare allocators within a row, "
             "not rows with each other.")
    L.append("- Ratios: `(x×)` after a value is value / glibc's; *best* is the allocator with the lowest median; "
             "*umalloc / best peer* compares umalloc with the best of the others. Geometric means are over the "
             "workloads that have a value. *spread* is the largest, over the allocators, median absolute "
             "deviation of the runs in percent of their median: how noisy that row is.")
    L.append("- *umalloc / each peer, per round* (time tables): for each other allocator, the median over the "
             "rounds of umalloc's run divided by that allocator's run of the same round; the column shows the "
             "largest of these, with its allocator. This VM runs in slow and fast phases that last longer "
             "than a round and slow every allocator alike; two runs of one round are seconds apart and see "
             "the same phase, so their ratio cancels it, where the ratio of two medians depends on which "
             "phase each allocator's middle run happened to fall in. It compares umalloc with every other "
             "allocator, not only the one with the best median, so it is never the kinder of the two by "
             "construction; both are reported.")
    L.append("")

    L.append("## Machine")
    L.append("")
    L.append("| | |")
    L.append("|---|---|")
    for k, label in (("cpu", "CPU"), ("nproc", "cores (nproc)"), ("mem", "memory"), ("kernel", "kernel"),
                     ("glibc", "glibc"), ("cc", "compiler (workloads: -O2)")):
        if k in meta:
            L.append("| %s | %s |" % (label, meta[k]))
    L.append("")
    L.append("| allocator | package, version, library |")
    L.append("|---|---|")
    for a in ORDER:
        if "lib_" + a in meta and (a in allocs or not a.startswith("umalloc-")):
            L.append("| %s | %s |" % (a, meta["lib_" + a]))
    L.append("")
    progs = [meta[k] for k in ("prog_python", "prog_sqlite", "prog_redis") if k in meta]
    if progs:
        L.append("Programs: " + ", ".join(progs) + ".")
        L.append("")

    wall_md, wall_gm, wall_um = table("wall", "s", workloads, allocs, med, samples, status, by_round["wall"])
    cpu_md, cpu_gm, cpu_um = table("cpu", "s", workloads, allocs, med, samples, status, by_round["cpu"])
    rss_md, rss_gm, rss_um = table("rss", "MiB", workloads, allocs, med, samples, status)

    L.append("## Summary")
    L.append("")
    L.append("Geometric mean over the workloads of each allocator's median, relative to glibc (lower is better):")
    L.append("")
    L.append("| | " + " | ".join(allocs) + " |")
    L.append("|---|" + "---:|" * len(allocs))
    for label, gm in (("wall time", wall_gm), ("CPU time", cpu_gm), ("peak RSS", rss_gm)):
        L.append("| %s | " % label + " | ".join(("%.2f×" % gm[a]) if gm.get(a) else "-" for a in allocs) + " |")
    L.append("")
    if "umalloc" in allocs:
        L.append("umalloc against the best other allocator of each workload (geometric mean): wall time %s, "
                 "CPU time %s, peak RSS %s." % tuple(("%.2f×" % x) if x else "-" for x in (wall_um, cpu_um, rss_um)))
        L.append("")
        peers = [a for a in allocs if not a.startswith("umalloc")]
        slow_med, slow_round, fat = [], [], []
        for w in workloads:
            um = med["wall"][w]["umalloc"]
            pv = {a: med["wall"][w][a] for a in peers if med["wall"][w][a] is not None}
            if um is None or not pv:
                continue
            bp = min(pv, key=pv.get)
            if um > 1.10 * pv[bp]:
                slow_med.append("%s %.2f× %s" % (w, um / pv[bp], bp))
            pw = paired_worst(by_round["wall"][w], list(pv))
            if pw and pw[0] > 1.10:
                slow_round.append("%s %.2f× %s" % (w, pw[0], pw[1]))
            rum = med["rss"][w]["umalloc"]
            rv = [med["rss"][w][a] for a in peers if med["rss"][w][a] is not None]
            if rum is not None and rv and rum > 1.5 * min(rv) + 2:
                fat.append("%s %.2f MiB against %.2f" % (w, rum, 1.5 * min(rv) + 2))
        L.append("Workloads where umalloc takes more than 1.10× the time of the best other allocator: "
                 "by the medians, %s; round by round against every other allocator (the *per round* "
                 "column, see *Method*), %s. Peak RSS above 1.5× the lowest other allocator's plus "
                 "2 MiB: %s." % ("; ".join(slow_med) or "none", "; ".join(slow_round) or "none",
                                 "; ".join(fat) or "none"))
        L.append("")

    cost = {}
    if "umalloc" in allocs and os.path.exists(args.cost):
        with open(args.cost) as f:
            for r in csv.DictReader(f):
                try:
                    cost[r["workload"]] = int(r["ir_umalloc"]) / int(r["ir_nostats"])
                except (ValueError, ZeroDivisionError, KeyError):
                    pass
    timed_nostats = "umalloc" in allocs and "umalloc-nostats" in allocs
    if cost or timed_nostats:
        # What statistics counting costs: the same library built with -DUM_NO_STATS, side by side.
        L.append("## Cost of statistics counting")
        L.append("")
        L.append("umalloc against the same library built with the counting compiled out "
                 "(`build/nostats/libumalloc.so`, `-DUM_NO_STATS=1`). Above 1 means counting costs "
                 "that much." + ("" if timed_nostats else " The no-stats build is not timed by default "
                 "(`make bench ALLOCS=\"glibc jemalloc mimalloc tcmalloc umalloc umalloc-nostats\"` times it)."))
        L.append("")
        if cost:
            L.append("The *instructions* column is the deterministic measure: the whole program's "
                     "instructions under callgrind at the QUICK sizes, umalloc / no-stats. Wall and "
                     "CPU time move by several percent between identical runs here, in both directions. "
                     "A row without a count is one whose instructions are the program's own work "
                     "(scripts/bench.sh, COST_SKIP).")
            L.append("")
        L.append("| workload | instructions: umalloc / no-stats" +
                 (" | wall: umalloc / no-stats | CPU: umalloc / no-stats |" if timed_nostats else " |"))
        L.append("|---|---:|" + ("---:|---:|" if timed_nostats else ""))
        rw, rc, ri = [], [], []
        for w in workloads:
            cells = [w]
            if w in cost:
                ri.append(cost[w])
                cells.append("%.4f" % cost[w])
            else:
                cells.append("-")
            for metric, acc in ((("wall", rw), ("cpu", rc)) if timed_nostats else ()):
                a, b = med[metric][w]["umalloc"], med[metric][w]["umalloc-nostats"]
                if a and b:
                    acc.append(a / b)
                    cells.append("%.3f" % (a / b))
                else:
                    cells.append("-")
            L.append("| " + " | ".join(cells) + " |")
        means = (ri, rw, rc) if timed_nostats else (ri,)
        L.append("| **geometric mean** | " + " | ".join(("**%.4f**" % geomean(x)) if x else "-" for x in means) + " |")
        L.append("")

    if "umalloc" in allocs and "umalloc-secure" in allocs:
        # What the hardened build costs: build/libumalloc-secure.so beside the normal one.
        L.append("## Cost of the secure build")
        L.append("")
        L.append("The hardened build (`build/libumalloc-secure.so`, `-DUM_SECURE=1`: encoded and checked "
                 "free lists, guard pages, fresh blocks in random order; docs/security.md) against the "
                 "normal one, median of each, in the same interleaved runs. Above 1 means the secure "
                 "build is that much slower or bigger.")
        L.append("")
        L.append("| workload | wall: secure / umalloc | CPU: secure / umalloc | peak RSS: secure / umalloc |")
        L.append("|---|---:|---:|---:|")
        acc = {"wall": [], "cpu": [], "rss": []}
        for w in workloads:
            cells = [w]
            for metric in ("wall", "cpu", "rss"):
                a, b = med[metric][w]["umalloc-secure"], med[metric][w]["umalloc"]
                if a and b:
                    acc[metric].append(a / b)
                    cells.append("%.3f" % (a / b))
                else:
                    cells.append("-")
            L.append("| " + " | ".join(cells) + " |")
        L.append("| **geometric mean** | **%s** | **%s** | **%s** |" % tuple(
            ("%.3f" % geomean(acc[m])) if acc[m] else "-" for m in ("wall", "cpu", "rss")))
        L.append("")

    L.append("## Wall time")
    L.append("")
    if "time" in charts:
        L.append("![wall time relative to glibc](%s/%s)" % (img_rel, charts["time"]))
        L.append("")
    L.append(wall_md)
    L.append("")
    L.append("## CPU time (user + sys)")
    L.append("")
    if "cpu" in charts:
        L.append("![CPU time relative to glibc](%s/%s)" % (img_rel, charts["cpu"]))
        L.append("")
    L.append(cpu_md)
    L.append("")
    L.append("## Peak RSS")
    L.append("")
    if "rss" in charts:
        L.append("![peak RSS](%s/%s)" % (img_rel, charts["rss"]))
        L.append("")
    L.append(rss_md)
    L.append("")

    L.append("## Instructions per operation")
    L.append("")
    if instr:
        n = instr[0].get("n", "?")
        L.append("Counted by valgrind's callgrind (`scripts/bench-instr.sh`, also `make bench-instr`), so "
                 "deterministic. `bench/instr.c` runs N = %s and then 2N iterations as separate parts; "
                 "per op = (Ir(2N) − Ir(N)) / N, which cancels start-up costs. One op is one malloc plus one "
                 "free. *allocator* counts only instructions outside the test program (the allocator and "
                 "anything it calls); *loop* is the whole iteration, the test's own ~10 instructions included. "
                 "`scripts/bench-instr.sh --check` fails if umalloc's malloc(32)+free pair takes more than "
                 "30 allocator instructions." % n)
        L.append("")
        if "instr" in charts:
            L.append("![instructions per operation](%s/%s)" % (img_rel, charts["instr"]))
            L.append("")
        L.append("| allocator | " + " | ".join("%s: allocator / loop" % tnames[t] for t in tests) + " |")
        L.append("|---|" + "---:|" * len(tests))
        by = {(r["allocator"], r["test"]): r for r in instr}
        for a in instr_allocs:
            cells = []
            for t in tests:
                r = by.get((a, t))
                cells.append("%s / %s" % (r["alloc_instr_per_op"], r["instr_per_op"]) if r else "-")
            L.append("| %s | " % a + " | ".join(cells) + " |")
    else:
        L.append("Not measured in this run (valgrind missing or BENCH_INSTR=0); see `make bench-instr`.")
    L.append("")

    L.extend(tlb_section(args.tlb, args.tlb_meta))
    if os.path.exists(args.notes):
        # Measured by hand, not by this run: the figures behind choices docs/design.md explains.
        with open(args.notes) as f:
            L.extend(f.read().rstrip("\n").split("\n"))
        L.append("")
    L.append("## Workloads")
    L.append("")
    L.append("Sources in `bench/`; each takes its sizes as `name=value` arguments (QUICK passes smaller ones).")
    L.append("")
    L.append("| workload | threads | what it does | arguments in this run |")
    L.append("|---|---:|---|---|")
    for w in workloads:
        L.append("| %s | %s | %s | `%s` |" % (w, threads.get(w, "?"), DESCRIPTIONS.get(family(w), ""),
                                             meta.get("args_" + w, "")))
    L.append("")
    L.append("## Raw data")
    L.append("")
    L.append("One line per run: `build/bench/results.csv` (a copy: [bench-results.csv](bench-results.csv)); "
             "instruction counts: `build/bench/instr.csv`; output of each workload's last run: `build/bench/logs/`.")
    L.append("")

    with open(args.out, "w") as f:
        f.write("\n".join(L))
    shutil.copyfile(args.results, os.path.join(out_dir, "bench-results.csv"))
    if os.path.exists(args.tlb):
        shutil.copyfile(args.tlb, os.path.join(out_dir, "bench-tlb.csv"))
    print("bench-report: wrote %s (%d workloads x %d allocators), charts: %s" % (
        args.out, len(workloads), len(allocs), ", ".join(sorted(charts.values())) or "none"))


if __name__ == "__main__":
    main()
