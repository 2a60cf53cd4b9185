"""Runs `nanguard fix` on every GRIST defect in each mode and `nanguard validate` on
each fixed model, side by side with RANUM's published figures.

    /usr/bin/python3 scripts/fix_corpus.py [--modes auto,immediate,inputs,weights,all]
        [--only 3,11,...] [--budget S] [--samples N] [--range-budget S] [--out FILE]

Per defect and mode: `nanguard fix MODEL --node NODE --at MODE --out FIXED` with the
case's ranges and weight mode (seconds = the fix command's wall time), then
`nanguard validate FIXED --original MODEL --budget S --samples N` (proof of the whole
fixed model, the trigger's searches, and sampling). A defect counts as fixed when the
node's finding is `fixed` (the analyzer proved the change removes it), validated
when validate's verdict is `holds` (proved, and no attack produced NaN/INF).
`kept` is 1 - RANUM's shrinkage: the mean over the tensors the mode may narrow of
new width / old width (a rewrite keeps everything: 1). The fixed twins must have
nothing to fix. Writes a markdown table (default results/fix-grist.md).
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
GRIST = os.path.join(ROOT, "corpora", "grist")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from analyze_corpus import case_args  # noqa: E402

# RANUM (ICSE'23), per-case logs in its repository (empirical_study/precond).
RANUM = {"all": (79, 0.391), "weights": (72, 0.302), "inputs": (37, 0.183)}


def run_json(args):
    t0 = time.time()
    p = subprocess.run(args, capture_output=True, text=True)
    dt = time.time() - t0
    if p.returncode not in (0, 1):
        return None, dt, p.stderr.strip()[:200]
    return json.loads(p.stdout), dt, ""


def fix_one(nanguard, model, case, defect, mode, tmp, args):
    out = os.path.join(tmp, f"{defect['id']}-{mode}.onnx")
    cmd = [nanguard, "fix", model, "--node", defect["node"], "--at", mode, "--out", out, "--format", "json",
           "--no-alternatives", "--range-budget", str(args.range_budget)] + case_args(case)
    j, dt, err = run_json(cmd)
    row = {"fixed": False, "validated": False, "kept": None, "seconds": dt, "how": "", "agreement": None, "detail": err}
    if j is None:
        return row
    found = [f for f in j["findings"] if f["node"] == defect["node"]]
    if not found or found[0]["status"] != "fixed":
        row["detail"] = found[0].get("reason", "") if found else "not flagged"
        return row
    fx = found[0]["fix"]
    row["fixed"] = True
    row["how"] = fx["rewrite"] or fx["at"]
    changes = fx["changes"]
    row["kept"] = 1.0 if fx["at"] == "rewrite" else (statistics.mean(c["kept"] for c in changes) if changes else 1.0)
    if not os.path.exists(out):
        row["detail"] = "no fixed model written"
        return row
    v, vdt, err = run_json([nanguard, "validate", out, "--original", model, "--budget", str(args.budget),
                            "--samples", str(args.samples), "--format", "json"] + case_args(case))
    row["validate_seconds"] = vdt
    if v is None:
        row["detail"] = err
        return row
    row["validated"] = v.get("verdict") == "holds"
    row["attacks"] = v.get("attacks", {}).get("runs", 0)
    row["failures"] = v.get("attacks", {}).get("failures", 0)
    row["agreement"] = (v.get("agreement") or {}).get("share")
    if not row["validated"]:
        row["detail"] = f"verdict {v.get('verdict')}"
    return row


def twin_has_nothing(nanguard, case, program):
    fixed = os.path.join(GRIST, program, case["fixed"]["model"])
    j, _, err = run_json([nanguard, "fix", fixed, "--format", "json", "--no-alternatives"] + case_args(case))
    return j is not None and not j["findings"] and j["out"] is None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--modes", default="auto,immediate,rewrite,inputs,weights,all")
    ap.add_argument("--only", default="")
    ap.add_argument("--budget", type=float, default=5)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--range-budget", type=float, default=30)
    ap.add_argument("--nanguard", default=os.path.join(ROOT, "build", "nanguard"))
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "fix-grist.md"))
    args = ap.parse_args()
    modes = args.modes.split(",")
    only = set(args.only.split(",")) if args.only else None
    rows, twins = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for program in sorted(os.listdir(GRIST), key=lambda s: (len(s), s)):
            cpath = os.path.join(GRIST, program, "case.json")
            if not os.path.exists(cpath):
                continue
            case = json.load(open(cpath))
            model = os.path.join(GRIST, program, "model.onnx")
            for d in case["defects"]:
                if only and d["id"] not in only and program not in only:
                    continue
                row = {"id": d["id"], "hazard": d["hazard"]}
                for m in modes:
                    row[m] = fix_one(args.nanguard, model, case, d, m, tmp, args)
                    print(d["id"], m, row[m]["fixed"], row[m]["validated"], row[m]["how"], row[m]["kept"],
                          f"{row[m]['seconds']:.1f}s", row[m]["detail"][:80], flush=True)
                rows.append(row)
            if "fixed" in case and (not only or program in only or any(d["id"] in only for d in case["defects"])):
                twins.append((program, twin_has_nothing(args.nanguard, case, program)))
    write(args, modes, rows, twins)


def write(args, modes, rows, twins):
    n = len(rows)
    lines = ["# nanguard fix on the GRIST corpus", "",
             f"Command: `/usr/bin/python3 scripts/fix_corpus.py --budget {args.budget:g} --samples {args.samples} "
             f"--range-budget {args.range_budget:g}` (this 2-core machine). Per defect: `fix --node NODE --at MODE`, "
             "then `validate FIXED --original MODEL` (proof + trigger searches + sampling). `kept`: mean new width / "
             "old width over the tensors a mode narrows (1 - RANUM's shrinkage; a rewrite keeps 1). Seconds: the fix "
             "command's wall time, LibTorch start-up included.", "",
             "| mode | fixed (proved) | validated | mean kept | agreement on normal inputs | median s | max s | RANUM fixed | RANUM kept |",
             "|---|---|---|---|---|---|---|---|---|"]
    for m in modes:
        sel = [r[m] for r in rows]
        fixed = [s for s in sel if s["fixed"]]
        val = [s for s in sel if s["validated"]]
        kept = statistics.mean(s["kept"] for s in fixed) if fixed else 0
        agree = [s["agreement"] for s in fixed if s["agreement"] is not None]
        secs = [s["seconds"] for s in sel]
        rf = RANUM.get(m)
        lines.append(f"| {m} | {len(fixed)}/{n} | {len(val)}/{n} | {kept:.3f} | "
                     f"{statistics.mean(agree):.3f} |" if agree else f"| {m} | {len(fixed)}/{n} | {len(val)}/{n} | {kept:.3f} | - |")
        lines[-1] += (f" {statistics.median(secs):.2f} | {max(secs):.2f} | " +
                      (f"{rf[0]}/79 | {1 - rf[1]:.3f} |" if rf else "- | - |"))
    ok = sum(1 for _, t in twins if t)
    lines += ["", f"Fixed twins with nothing to fix (no finding, no model written): **{ok} of {len(twins)}**.", "",
              "| defect | hazard | " + " | ".join(modes) + " |", "|---|---|" + "---|" * len(modes)]
    for r in rows:
        cells = []
        for m in modes:
            s = r[m]
            if not s["fixed"]:
                cells.append("no: " + (s["detail"][:60] or "-").replace("|", "/"))
            else:
                cells.append(f"{s['how']} kept {s['kept']:.3f}{'' if s['validated'] else ' UNVALIDATED'} {s['seconds']:.1f}s")
        lines.append(f"| {r['id']} | {r['hazard']} | " + " | ".join(cells) + " |")
    bad = [(p, t) for p, t in twins if not t]
    if bad:
        lines += ["", "Twins with something to fix: " + ", ".join(p for p, _ in bad)]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
