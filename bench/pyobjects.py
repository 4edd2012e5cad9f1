"""An object-heavy Python program for the allocator benchmark (run with PYTHONMALLOC=malloc so
every object goes through malloc): records with dicts and lists, a dict index, sorting, string
building and splitting, a JSON round trip, sets and tuples, all dropped at the end of each round.
Checks its own results and exits 1 if anything is off.

    python3 -S pyobjects.py N ROUNDS
"""
import json
import sys


class Rec:
    def __init__(self, i):
        self.id = i
        self.name = "rec-%06d" % ((i * 7919) % 1000003)
        self.tags = [str(i % 7), str(i % 11), str(i % 13)]
        self.attrs = {"a": i, "b": i * 2, "c": (i, i + 1), "d": self.name[-3:]}


def one_round(n, r):
    recs = [Rec(i + r) for i in range(n)]
    index = {rec.name: rec for rec in recs}
    by_name = sorted(recs, key=lambda rec: rec.name)
    total = 0
    for rec in by_name[::3]:
        total += index[rec.name].attrs["b"]
    words = " ".join(rec.name + ":" + ",".join(rec.tags) for rec in recs[: n // 2])
    parts = words.split(" ")
    if len(parts) != n // 2:
        raise SystemExit("split count")
    blob = json.dumps([rec.attrs for rec in recs[: n // 4]])
    back = json.loads(blob)
    if sum(d["a"] for d in back) != sum(rec.id for rec in recs[: n // 4]):
        raise SystemExit("json round trip")
    seen = set()
    for rec in recs:
        seen.add((rec.id % 1000, rec.attrs["d"]))
    pairs = [(rec.id, rec.name) for rec in recs if rec.id % 2 == 0]
    pairs.reverse()
    counts = {}
    for rec in recs:
        for t in rec.tags:
            counts[t] = counts.get(t, 0) + 1
    if sum(counts.values()) != 3 * n or len(index) != len(recs):
        raise SystemExit("tag counts")
    if len(pairs) != sum(1 for i in range(r, n + r) if i % 2 == 0):
        raise SystemExit("pair count")
    result = total + len(seen) + len(pairs) + sum(counts.values()) + len(blob)
    del recs, index, by_name, words, parts, blob, back, seen, pairs, counts
    return result


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 60000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    check = 0
    for r in range(rounds):
        res = one_round(n, r)
        if res <= 3 * n:
            raise SystemExit("implausible result %d" % res)
        check = (check * 1000003 + res) % (1 << 61)
    print("pyobjects ok checksum=%x n=%d rounds=%d" % (check, n, rounds))


main()
