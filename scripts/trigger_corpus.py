"""Runs `nanguard trigger` on every GRIST defect, guided and random, and scores both.

    /usr/bin/python3 scripts/trigger_corpus.py [--budget S] [--only 3,11,...] [--out FILE]
        [--strategies guided,random] [--device cuda] [--nanguard BINARY] [--zoo] [--weights MODE]

Per defect: `nanguard trigger MODEL --node NODE --budget S --strategy guided|random
--out DIR` with the case's ranges and weight mode (seed 0), then `nanguard replay` on
the reproducer it wrote. A defect counts when the node's finding comes back
`triggered` (a real float32 run failed at that node) and its reproducer replays.
Seconds are the search's own (the CLI adds about 0.5 s of LibTorch start-up); a
defect not triggered counts as the whole budget in the medians. The "random-hard" set
is the defects plain random sampling missed in results/random-trigger-plain.md.
With --zoo, the naive log(softmax) heads of the clean architectures exported into
corpora/zoo/cache (`scripts/corpus --zoo`) instead (default out results/trigger-zoo.md).
With --device cuda, witnesses are confirmed on CPU and CUDA and each reproducer is
replayed on both (scripts/gpu-check). --weights overrides every case's weight mode
(fixed, free or free=LO,HI; e.g. free weights on the zoo, whose cases fix them). Writes a markdown table (default
results/trigger-grist.md).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRIST = os.path.join(ROOT, "corpora", "grist")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from analyze_corpus import case_args  # noqa: E402


def with_weights(case, mode):
    """The case with its weight mode replaced: fixed, free or free=LO,HI."""
    if not mode:
        return case
    w = {"mode": "fixed"} if mode == "fixed" else {"mode": "free"}
    if mode.startswith("free="):
        w["range"] = [float(v) for v in mode[5:].split(",")]
    return dict(case, weights=w)


def trigger(nanguard, model, case, defect, strategy, budget, out, device="cpu"):
    args = [nanguard, "trigger", model, "--node", defect["node"], "--budget", str(budget),
            "--strategy", strategy, "--out", out, "--format", "json", "--device", device] + case_args(case)
    t0 = time.time()
    p = subprocess.run(args, capture_output=True, text=True)
    wall = time.time() - t0
    row = {"status": "error", "seconds": budget, "strategy": "", "runs": 0, "replayed": False, "wall": wall,
           "devices": [], "replayed_cuda": None}
    if p.returncode not in (0, 1):
        row["detail"] = p.stderr.strip()[:200]
        return row
    found = [f for f in json.loads(p.stdout)["findings"] if f["node"] == defect["node"]]
    if not found:
        row["status"] = "not-flagged"
        return row
    f = found[0]
    row["status"] = f["status"]
    if f["status"] == "triggered":
        w = f["witness"]
        row.update(seconds=w["seconds"], strategy=w["strategy"], runs=w["runs"], devices=w["devices"])
        if w.get("reproducer"):
            r = subprocess.run([nanguard, "replay", w["reproducer"]], capture_output=True, text=True)
            row["replayed"] = r.returncode == 0
            if device == "cuda":
                r = subprocess.run([nanguard, "replay", w["reproducer"], "--device", "cuda"], capture_output=True, text=True)
                row["replayed_cuda"] = r.returncode == 0
    else:
        row.update(seconds=f["search"]["seconds"], runs=f["search"]["runs"])
    return row


def random_hard():
    path = os.path.join(ROOT, "results", "random-trigger-plain.md")
    hard = set()
    for line in open(path):
        m = re.match(r"\| (\w+) \| \w+ \| \w+ \| no \|", line)
        if m:
            hard.add(m.group(1))
    return hard


def summary(rows, key, budget, subset=None):
    sel = [r for r in rows if subset is None or r["id"] in subset]
    hit = [r for r in sel if r[key]["status"] == "triggered" and r[key]["replayed"]]
    secs = [r[key]["seconds"] if r[key]["status"] == "triggered" else budget for r in sel]
    hit_secs = [r[key]["seconds"] for r in hit]
    return {"n": len(sel), "hit": len(hit), "median_all": statistics.median(secs) if secs else 0,
            "median_hit": statistics.median(hit_secs) if hit_secs else 0, "max_hit": max(hit_secs) if hit_secs else 0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nanguard", default=os.path.join(ROOT, "build", "nanguard"))
    ap.add_argument("--budget", type=float, default=60)
    ap.add_argument("--only", default="")
    ap.add_argument("--strategies", default="guided,random")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--out", default="")
    ap.add_argument("--zoo", action="store_true")
    ap.add_argument("--weights", default="", help="override every case's weight mode: fixed, free or free=LO,HI")
    a = ap.parse_args()
    corpus = os.path.join(ROOT, "corpora", "zoo", "cache") if a.zoo else GRIST
    a.out = a.out or os.path.join(ROOT, "results", "trigger-zoo.md" if a.zoo else "trigger-grist.md")
    only = set(a.only.split(",")) if a.only else None
    strategies = a.strategies.split(",")
    rows = []
    work = tempfile.mkdtemp(prefix="nanguard-trigger-")
    if a.zoo:
        programs = sorted(d for d in os.listdir(corpus) if os.path.exists(os.path.join(corpus, d, "case.json")))
    else:
        programs = sorted((d for d in os.listdir(corpus) if d.isdigit()), key=int)
    for prog in programs:
        if only and prog not in only:
            continue
        case = with_weights(json.load(open(os.path.join(corpus, prog, "case.json"))), a.weights)
        model = os.path.join(corpus, prog, "model.onnx")
        for d in case["defects"]:
            row = {"id": d["id"], "op": d["op"], "kind": d["kind"], "node": d["node"]}
            for s in strategies:
                row[s] = trigger(a.nanguard, model, case, d, s, a.budget, os.path.join(work, s, d["id"]), a.device)
            rows.append(row)
            print(d["id"], " ".join(f"{s}={row[s]['status']}/{row[s]['seconds']:.2f}s/{row[s]['strategy']}" for s in strategies),
                  flush=True)
    write_table(a, rows, strategies)


def write_table(a, rows, strategies):
    hard = set() if a.zoo else random_hard()
    lines = [f"# nanguard trigger on the {'zoo (naive log(softmax) heads)' if a.zoo else 'GRIST corpus'}", "",
             f"Command: `/usr/bin/python3 scripts/trigger_corpus.py --budget {a.budget:g}{' --zoo' if a.zoo else ''}"
             f"{' --device cuda' if a.device == 'cuda' else ''}{' --weights ' + a.weights if a.weights else ''}` (seed 0, one `nanguard trigger --node` "
             f"per defect, search on CPU, confirmed on {'CPU and CUDA' if a.device == 'cuda' else 'CPU'}). A defect counts when its node comes back `triggered` (a real float32 run "
             "failed there: NaN/INF from finite inputs, or for `gradient` defects a real backward pass with a NaN/INF gradient "
             "at the node) and `nanguard replay` on the reproducer exits 0. Seconds: the search's own; medians over all "
             "defects count a miss as the whole budget. `random` is uniform sampling in the same box, same budget.", ""]
    for s in strategies:
        t = summary(rows, s, a.budget)
        h = summary(rows, s, a.budget, hard)
        lines.append(f"- **{s}: {t['hit']} of {t['n']} triggered and replayed**; median {t['median_all']:.2f} s over all "
                     f"defects ({t['median_hit']:.2f} s over the triggered ones), max {t['max_hit']:.2f} s over the triggered"
                     + (f"; on the {h['n']} defects plain random sampling missed in results/random-trigger-plain.md: {h['hit']}"
                        if hard else "") + ".")
    lines += ["", "| defect | op | kind | " + " | ".join(f"{s}: status | s | strategy | runs" for s in strategies) + " |",
              "|---|---|---|" + "---|---:|---|---:|" * len(strategies)]
    for r in rows:
        cells = []
        for s in strategies:
            x = r[s]
            st = x["status"] + ("" if x["status"] != "triggered" else (", replayed" if x["replayed"] else ", NOT replayed"))
            if x["replayed_cuda"] is not None:
                st += f"; cuda: {'replayed' if x['replayed_cuda'] else 'NOT replayed'} (confirmed on {'+'.join(x['devices'])})"
            cells += [st, f"{x['seconds']:.2f}", x["strategy"] or "-", str(x["runs"])]
        mark = " (random-hard)" if r["id"] in hard else ""
        lines.append(f"| {r['id']}{mark} | {r['op']} | {r['kind']} | " + " | ".join(cells) + " |")
    open(a.out, "w").write("\n".join(lines) + "\n")
    print("\n".join(lines[:10]))


if __name__ == "__main__":
    sys.exit(main())
