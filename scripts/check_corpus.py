"""Runs `nanguard check` on every GRIST program and fixed twin: per defect whether its
node was witnessed (a real float32 run fails there), fixed (a proved fix whose
validation holds) and how long the program took; the twins must exit 0 (proved).

    /usr/bin/python3 scripts/check_corpus.py [--budget S] [--samples N] [--only 3,11]
        [--shard K/N --json FILE] [--merge F1,F2] [--out results/check-grist.md]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from analyze_corpus import case_args, grist_cases  # noqa: E402


def check(nanguard, model, case, args, out):
    cmd = [nanguard, "check", model, "--budget", str(args.budget), "--samples", str(args.samples), "--format", "json",
           "--quiet"] + (["--out", out] if out else []) + case_args(case)
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.time() - t0
    if p.returncode not in (0, 1):
        return None, dt, p.returncode, p.stderr.strip()
    return json.loads(p.stdout), dt, p.returncode, ""


def program_rows(nanguard, prog, case, model, args, tmp):
    j, dt, rc, err = check(nanguard, model, case, args, os.path.join(tmp, prog))
    rows = []
    for d in case["defects"]:
        f = None if j is None else next((f for f in j["findings"] if f["node"] == d["node"] and f["hazard"] == d["hazard"]), None)
        w = (f or {}).get("witness") or {}
        rows.append({"id": d["id"], "hazard": d["hazard"], "found": f is not None,
                     "witnessed": bool(w.get("reproducer")), "fixed": bool(f) and f["status"] == "fixed",
                     "status": f["status"] if f else ("error: " + err if err else "not found"),
                     "findings": len(j["findings"]) if j else 0, "seconds": dt, "program": prog})
    twin = os.path.join(os.path.dirname(model), "fixed.onnx")
    twin_row = None
    if os.path.exists(twin) and case.get("fixed", {}).get("safe", True):
        tj, tdt, trc, terr = check(nanguard, twin, case, args, None)
        twin_row = {"program": prog, "exit": trc, "seconds": tdt, "findings": len(tj["findings"]) if tj else None,
                    "error": terr}
    return rows, twin_row


def write(args, rows, twins):
    n = len(rows)
    wit = sum(r["witnessed"] for r in rows)
    fixed = sum(r["fixed"] for r in rows)
    found = sum(r["found"] for r in rows)
    secs = {}
    for r in rows:
        secs[r["program"]] = r["seconds"]
    times = list(secs.values())
    ok_twins = sum(t["exit"] == 0 for t in twins)
    lines = ["# nanguard check on the GRIST corpus", "",
             f"Command: `/usr/bin/python3 scripts/check_corpus.py --budget {args.budget} --samples {args.samples}` "
             "(this 2-core machine; each program's ranges and weight mode from its case.json). Per program one "
             "`nanguard check` (analyze, trigger every finding for `--budget` s, fix `auto`, validate); a defect is "
             "witnessed when a reproducer was written for its node, fixed when its status is `fixed` (proved and "
             "the whole fixed model's validation holds). Seconds: the whole process per program.", "",
             "| defects | found | witnessed | fixed (proved + validated) | programs | median s | max s | twins exit 0 |",
             "|---|---|---|---|---|---|---|---|",
             f"| {n} | {found}/{n} | {wit}/{n} | {fixed}/{n} | {len(secs)} | {statistics.median(times):.1f} | "
             f"{max(times):.1f} | {ok_twins}/{len(twins)} |", "",
             "| defect | hazard | status | witnessed | fixed | findings in program | program s |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['id']} | {r['hazard']} | {r['status']} | {'yes' if r['witnessed'] else 'no'} | "
                     f"{'yes' if r['fixed'] else 'no'} | {r['findings']} | {r['seconds']:.1f} |")
    bad = [t for t in twins if t["exit"] != 0]
    if bad:
        lines += ["", "Twins that did not exit 0: " + ", ".join(f"{t['program']} (exit {t['exit']}, {t['findings']} "
                                                               f"findings{', ' + t['error'] if t['error'] else ''})" for t in bad)]
    open(args.out, "w").write("\n".join(lines) + "\n")
    print(f"{fixed}/{n} fixed, {wit}/{n} witnessed, twins {ok_twins}/{len(twins)}; table in {args.out}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, default=5)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--only", default="")
    ap.add_argument("--nanguard", default=os.path.join(ROOT, "build", "nanguard"))
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "check-grist.md"))
    ap.add_argument("--shard", default="")
    ap.add_argument("--json", default="")
    ap.add_argument("--merge", default="")
    args = ap.parse_args()
    if args.merge:
        rows, twins = [], []
        for f in args.merge.split(","):
            d = json.load(open(f))
            rows += d["rows"]
            twins += d["twins"]
        order = {c["id"]: i for i, (_, case, _) in enumerate(grist_cases()) for c in case["defects"]}
        rows.sort(key=lambda r: order.get(r["id"], 0))
        return write(args, rows, twins)
    k, n = (int(v) for v in args.shard.split("/")) if args.shard else (0, 1)
    only = set(args.only.split(",")) if args.only else None
    rows, twins = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (prog, case, model) in enumerate(grist_cases()):
            if i % n != k or (only and prog not in only) or not os.path.exists(model):
                continue
            r, t = program_rows(args.nanguard, prog, case, model, args, tmp)
            for row in r:
                print(row["id"], row["status"], f"{row['seconds']:.1f}s", flush=True)
            rows += r
            if t:
                twins.append(t)
    if args.json:
        json.dump({"rows": rows, "twins": twins}, open(args.json, "w"))
    if not args.shard:
        write(args, rows, twins)


if __name__ == "__main__":
    main()
