"""Nightly fuzzing of the corpora: every GRIST program and its fixed twin, and the
small zoo models that were exported (the engine of scripts/fuzz-nightly).

    /usr/bin/python3 scripts/fuzz_nightly.py [--budget S] [--twin-budget S] [--only 3,11,...] [--max-bytes N]
        [--modes custom[,plain]] [--random S] [--python S] [--parallel N] [--out DIR] [--markdown FILE] [--fresh]
        [--stop-when-found] [--twins-only] [--no-build]

Per model, scripts/fuzz_run.py with the case's ranges and weight mode; its corpus is
kept under OUT/<model>/corpus (default OUT: build-fuzz/nightly) and pruned (libFuzzer -merge) after each run, unless
--fresh starts from the seeds alone (measurements). A GRIST defect counts as found
when a failure names its truth node (case.json). Twins (fixed.onnx) must show no
failure. --modes custom,plain fuzzes each program twice, with the value mutator and
with plain byte mutation; --random S also runs `nanguard trigger --strategy random
--budget S` on it and reports its runs per second. --stop-when-found ends a
program's run once all its defects were found (its exec/s is then over a shorter
run). Writes OUT/summary.json, OUT/fuzz.sarif (every failure) and the Markdown
summary (default OUT/summary.md). Exit 1 when a twin failed or a zoo model failed,
0 otherwise, 2 on errors.
"""
import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from analyze_corpus import case_args, grist_cases  # noqa: E402
import fuzz_run  # noqa: E402

ZOO = os.path.join(ROOT, "corpora", "zoo")


def zoo_cases(max_bytes):
    """(name, case, model path) of the exported zoo models small enough to fuzz."""
    cases = json.load(open(os.path.join(ZOO, "cases.json")))
    for name, case in sorted(cases.items()):
        for file in ("model.onnx", "fixed.onnx"):
            path = os.path.join(ZOO, "cache", name, file)
            if os.path.exists(path) and os.path.getsize(path) <= max_bytes:
                yield f"zoo-{name}-{file[:-5]}", case, path


def fuzz_one(a, key, model, case, budget, plain, until):
    out = os.path.join(a.out, key + ("-plain" if plain else ""))
    argv = [model, "--budget", str(budget), "--out", out, "--no-build", "--seed", "1"] + case_args(case)
    if plain:
        argv.append("--plain")
    if not a.fresh:
        argv.append("--prune")
    for node in until:
        argv += ["--until", node]
    if a.fresh:
        subprocess.run(["rm", "-rf", os.path.join(out, "corpus")])
    p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "fuzz_run.py")] + argv,
                       capture_output=True, text=True)
    summary = os.path.join(out, "summary.json")
    if p.returncode not in (0, 1) or not os.path.exists(summary):
        return {"error": (p.stderr.strip() or p.stdout.strip())[-300:]}
    s = json.load(open(summary))
    s["out"] = out
    return s


# The baselines run on one thread, as fuzz_model does (harness/fuzz/one_thread.h):
# OpenBLAS's own pool ignores at::set_num_threads and torch.set_num_threads.
ONE_THREAD = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")


def random_rate(nanguard, model, case, budget):
    """Runs per second of `nanguard trigger --strategy random` over all findings."""
    args = [nanguard, "trigger", model, "--strategy", "random", "--budget", str(budget), "--format", "json"]
    p = subprocess.run(args + case_args(case), capture_output=True, text=True, env=ONE_THREAD)
    if p.returncode not in (0, 1):
        return None
    runs = secs = 0
    for f in json.loads(p.stdout)["findings"]:
        w = f.get("witness") or f.get("search") or {}
        runs += w.get("runs", 0)
        secs += w.get("seconds", 0)
    return {"runs": runs, "seconds": round(secs, 2), "runs_per_s": round(runs / secs, 1) if secs > 0 else None}


def program_jobs(a):
    """(key, model, case, kind) for every model to fuzz."""
    only = set(a.only.split(",")) if a.only else None
    for prog, case, model in grist_cases():
        if only and prog not in only:
            continue
        if os.path.getsize(model) > a.max_bytes:
            continue
        if not a.twins_only:
            yield f"grist-{prog}", model, case, "grist"
        twin = os.path.join(os.path.dirname(model), case["fixed"]["model"])
        if a.twin_budget > 0 and os.path.exists(twin):
            yield f"grist-{prog}-twin", twin, case, "twin"
    if not only and not a.twins_only:
        for key, case, model in zoo_cases(a.max_bytes):
            yield key, model, case, "zoo"


def python_rate(program, budget):
    """The Python baseline (scripts/python_random.py): the program's PyTorch module, eagerly."""
    p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "python_random.py"), program,
                        "--budget", str(budget)], capture_output=True, text=True, env=ONE_THREAD)
    return json.loads(p.stdout) if p.returncode == 0 else None


def run_job(a, job):
    key, model, case, kind = job
    row = {"key": key, "model": os.path.relpath(model, ROOT), "kind": kind}
    truth = [d["node"] for d in case.get("defects", [])] if kind == "grist" else []
    until = truth if a.stop_when_found else []
    budget = a.twin_budget if kind == "twin" else a.budget
    for mode in a.modes:
        r = fuzz_one(a, key, model, case, budget, mode == "plain", until)
        found = sorted({d["id"] for d in case.get("defects", []) for c in r.get("crashes", []) if c["node"] == d["node"]})
        row[mode] = {"execs": r.get("execs"), "execs_per_s": r.get("execs_per_s"), "seconds": r.get("seconds"),
                     "crashes": r.get("crashes", []), "found": found if kind == "grist" else [],
                     "error": r.get("error"), "out": r.get("out")}
    if a.random and kind == "grist":
        row["random"] = random_rate(os.path.join(fuzz_run.BUILD, "nanguard"), model, case, a.random)
    if a.python and kind == "grist":
        row["python"] = python_rate(case["program"], a.python)
    row["defects"] = [d["id"] for d in case.get("defects", [])] if kind == "grist" else []
    return row


def merged_sarif(rows, modes):
    runs = []
    for r in rows:
        for m in modes:
            out = (r.get(m) or {}).get("out")
            path = os.path.join(out, "fuzz.sarif") if out else None
            if path and os.path.exists(path):
                runs += json.load(open(path))["runs"]
    return {"version": "2.1.0", "$schema": "https://json.schemastore.org/sarif-2.1.0.json", "runs": runs}


def markdown(a, rows):
    grist = [r for r in rows if r["kind"] == "grist"]
    defects = sum(len(r["defects"]) for r in grist)
    lines = [f"# Nightly fuzzing: {len(rows)} models, {a.budget:g} s each ({', '.join(a.modes)})", ""]
    for m in a.modes:
        found = sum(len(r[m]["found"]) for r in grist)
        rates = [r[m]["execs_per_s"] for r in grist if r[m]["execs_per_s"]]
        med = statistics.median(rates) if rates else 0
        lines.append(f"- {m}: {found} of {defects} GRIST defects found; median {med:,.0f} exec/s")
    twins = [r for r in rows if r["kind"] == "twin"]
    if twins:
        bad = [r["key"] for r in twins if r[a.modes[0]]["crashes"]]
        lines.append(f"- fixed twins: {len(bad)} of {len(twins)} with a failure {bad if bad else ''}".rstrip())
    zoo = [r for r in rows if r["kind"] == "zoo"]
    lines.append(f"- zoo models: {len(zoo)} fuzzed" + ("" if zoo else " (none exported: scripts/corpus --zoo)"))
    for key, label in (("random", "`nanguard trigger --strategy random`"),
                       ("python", "Python baseline (the PyTorch module, eager)")):
        rates = [(r.get(key) or {}).get("runs_per_s") for r in grist]
        rates = [x for x in rates if x]
        if getattr(a, key) and rates:
            lines.append(f"- {label}: median {statistics.median(rates):,.0f} runs/s")
    head = "| model | defects | " + " | ".join(f"{m} exec/s | {m} found (s)" for m in a.modes)
    head += " | random runs/s" if a.random else ""
    head += " | python runs/s |" if a.python else " |"
    lines += ["", head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        cells = [r["key"], ",".join(r["defects"]) or "-"]
        for m in a.modes:
            x = r[m]
            cells.append(f"{x['execs_per_s']:,.0f}" if x["execs_per_s"] else (x["error"] or "-")[:60])
            hits = [f"{c['node'] or 'crash'} {c['hazard']} ({c['seconds']:g})" for c in x["crashes"]]
            cells.append("; ".join(hits) or "none")
        for key in ("random", "python"):
            if getattr(a, key):
                rate = (r.get(key) or {}).get("runs_per_s")
                cells.append(f"{rate:,.0f}" if rate else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=60)
    ap.add_argument("--twin-budget", type=float, default=None, help="default: --budget")
    ap.add_argument("--only")
    ap.add_argument("--max-bytes", type=int, default=64 << 20)
    ap.add_argument("--modes", default="custom")
    ap.add_argument("--random", type=float, default=0)
    ap.add_argument("--python", type=float, default=0, help="also the Python baseline for S seconds")
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(fuzz_run.BUILD, "nightly"))
    ap.add_argument("--markdown")
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--twins-only", action="store_true", help="only the fixed twins (--twin-budget each)")
    ap.add_argument("--stop-when-found", action="store_true")
    ap.add_argument("--no-build", action="store_true")
    a = ap.parse_args()
    a.modes = a.modes.split(",")
    if a.twin_budget is None:
        a.twin_budget = a.budget
    try:
        fuzz_run.ensure_build(a.no_build)
    except fuzz_run.FuzzError as e:
        print(f"fuzz-nightly: {e}", file=sys.stderr)
        return 2
    os.makedirs(a.out, exist_ok=True)
    jobs, rows, t0 = list(program_jobs(a)), [], time.time()
    with concurrent.futures.ThreadPoolExecutor(a.parallel) as pool:
        for row in pool.map(lambda j: run_job(a, j), jobs):
            rows.append(row)
            m = row[a.modes[0]]
            print(f"{row['key']}: {m['execs_per_s']} exec/s, found {m['found']} of {row['defects']}, "
                  f"{len(m['crashes'])} failures{' ERROR ' + m['error'] if m['error'] else ''}", flush=True)
    json.dump({"seconds": round(time.time() - t0, 1), "budget": a.budget, "modes": a.modes, "rows": rows},
              open(os.path.join(a.out, "summary.json"), "w"), indent=1)
    json.dump(merged_sarif(rows, a.modes), open(os.path.join(a.out, "fuzz.sarif"), "w"), indent=1)
    md = markdown(a, rows)
    open(a.markdown or os.path.join(a.out, "summary.md"), "w").write(md)
    print(md)
    if any(r[a.modes[0]]["error"] for r in rows):
        return 2
    bad = [r for r in rows if r["kind"] in ("twin", "zoo") and r[a.modes[0]]["crashes"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
