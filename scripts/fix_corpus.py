"""Runs `nanguard fix` on every GRIST defect in each mode and `nanguard validate` on
each fixed model, side by side with RANUM's published figures.

    /usr/bin/python3 scripts/fix_corpus.py [--modes auto,immediate,inputs,weights,all]
        [--only 3,11,...] [--budget S] [--samples N] [--range-budget S] [--out FILE]

Per program and mode: `nanguard fix MODEL --at MODE --out FIXED` with the case's
ranges and weight mode (every finding of the model; seconds per defect = the fix
command's wall time divided by the program's defects), then `nanguard validate FIXED
--original MODEL --budget S --samples N` (proof of the whole fixed model, the
trigger's searches on the original's witnesses, and sampling). A defect counts as
fixed when its node's finding is `fixed` (the analyzer proved the change removes it),
validated when the fixed model's verdict is `holds` (proved, and no attack produced
NaN/INF anywhere in the model).
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
from analyze_corpus import case_args, grist_cases  # noqa: E402

# RANUM (ICSE'23), from the per-case logs in its repository (empirical_study/precond),
# as scripts/ranum_logs.py reads them; `--ranum DIR` reads them again from a local copy.
RANUM = {"inputs": {"fixed": 37, "kept_reported": 0.817, "kept_ranged": 0.711, "least_kept": 0.125},
         "weights": {"fixed": 72, "kept_reported": 0.698, "kept_ranged": 0.538, "least_kept": 0.037},
         "all": {"fixed": 79, "kept_reported": 0.609, "kept_ranged": 0.391, "least_kept": 0.115}}


def run_json(args):
    t0 = time.time()
    p = subprocess.run(args, capture_output=True, text=True)
    dt = time.time() - t0
    if p.returncode not in (0, 1):
        return None, dt, p.stderr.strip()[:200]
    return json.loads(p.stdout), dt, ""


def fix_program(nanguard, model, case, mode, tmp, args):
    """One `fix --at MODE` of the whole model (every finding), then one validate of
    the fixed model: a model with several defects is only safe when all are fixed."""
    out = os.path.join(tmp, f"{case['program']}-{mode}.onnx")
    prec = ["--precision", args.precision] if args.precision else []
    cmd = [nanguard, "fix", model, "--at", mode, "--out", out, "--format", "json", "--no-alternatives",
           "--range-budget", str(args.range_budget)] + case_args(case) + prec
    j, dt, err = run_json(cmd)
    res = {"seconds": dt, "findings": {}, "verdict": None, "agreement": None, "attacks": 0, "failures": 0, "detail": err}
    if j is None:
        return res
    for f in j["findings"]:  # by node; a defect's node may also carry a half model's gradient findings
        res["findings"].setdefault(f["node"], []).append(f)
    if os.path.exists(out):
        human = os.path.join(os.path.dirname(model), case.get("fixed", {}).get("model", "fixed.onnx"))
        if mode == "auto" and os.path.exists(human):  # ours against the developers' own fix
            h, _, _ = run_json([nanguard, "validate", out, "--original", human, "--budget", "0", "--samples",
                                str(args.samples), "--format", "json"] + case_args(case))
            res["human_agreement"] = (h.get("agreement") or {}).get("share") if h else None
        v, _, err = run_json([nanguard, "validate", out, "--original", model, "--budget", str(args.budget),
                              "--samples", str(args.samples), "--format", "json"] + case_args(case) + prec)
        if v is None:
            res["detail"] = err
        else:
            res["verdict"] = v.get("verdict")
            res["attacks"] = v.get("attacks", {}).get("runs", 0)
            res["failures"] = v.get("attacks", {}).get("failures", 0)
            res["agreement"] = (v.get("agreement") or {}).get("share")
    return res


def defect_finding(res, defect):
    """The defect's finding at its node: its own hazard, else (a half precision turns
    exp-overflow into the generic overflow) a forward one, else any."""
    at = res["findings"].get(defect["node"], [])
    same = [f for f in at if f["hazard"] == defect["hazard"]]
    other = [f for f in at if f.get("kind") == "forward"] + at
    return (same or other or [None])[0]


def defect_row(res, defect, ndefects):
    f = defect_finding(res, defect)
    row = {"fixed": False, "validated": False, "kept": None, "min_kept": None, "how": "", "agreement": res["agreement"],
           "human_agreement": res.get("human_agreement"),
           "seconds": res["seconds"] / max(ndefects, 1), "detail": res["detail"]}
    if f is None:
        row["detail"] = row["detail"] or "not flagged"
        return row
    if f["status"] != "fixed":
        row["detail"] = f.get("reason", "")
        row["unremovable"] = "unremovable" in f
        return row
    fx = f["fix"]
    row["fixed"] = True
    row["how"] = fx["rewrite"] or fx["at"]
    changes = fx["changes"]
    row["kept"] = statistics.mean(c["kept"] for c in changes) if changes else 1.0
    row["min_kept"] = min((c["kept"] for c in changes), default=1.0)
    row["kept_all"] = fx.get("kept_all_nodes")
    row["validated"] = res["verdict"] == "holds"
    if not row["validated"]:
        row["detail"] = f"fixed model verdict {res['verdict']} ({res['failures']} of {res['attacks']} attack runs failed)"
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
    ap.add_argument("--shard", default="", help="K/N: only every N-th program from the K-th (0-based); rows to --json")
    ap.add_argument("--json", default="", help="also dump the rows and twins to this file")
    ap.add_argument("--merge", default="", help="FILE,FILE,...: write the table from shards' --json dumps")
    ap.add_argument("--precision", default="", help="fp16, bf16, autocast-fp16, autocast-bf16: the models as run in it")
    ap.add_argument("--ranum", default="", help="RANUM's repository (a checkout or a git dir): its figures from its logs")
    args = ap.parse_args()
    modes = args.modes.split(",")
    if args.ranum:
        from ranum_logs import ranum_figures
        RANUM.update(ranum_figures(args.ranum))
    if args.merge:
        rows, twins = [], []
        for f in args.merge.split(","):
            d = json.load(open(f))
            rows += d["rows"]
            twins += [tuple(t) for t in d["twins"]]
        order = {c["id"]: i for i, (_, case, _) in enumerate(grist_cases()) for c in case["defects"]}
        rows.sort(key=lambda r: order.get(r["id"], 0))
        return write(args, modes, rows, twins)
    shard = tuple(int(v) for v in args.shard.split("/")) if args.shard else (0, 1)
    only = set(args.only.split(",")) if args.only else None
    rows, twins = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for index, (program, case, model) in enumerate(grist_cases()):
            if index % shard[1] != shard[0]:
                continue
            defects = [d for d in case["defects"] if not only or d["id"] in only or program in only]
            if not defects:
                continue
            results = {m: fix_program(args.nanguard, model, case, m, tmp, args) for m in modes}
            for d in defects:
                row = {"id": d["id"], "hazard": d["hazard"]}
                for m in modes:
                    row[m] = defect_row(results[m], d, len(case["defects"]))
                    print(d["id"], m, row[m]["fixed"], row[m]["validated"], row[m]["how"], row[m]["kept"],
                          f"{row[m]['seconds']:.1f}s", row[m]["detail"][:80], flush=True)
                rows.append(row)
            if "fixed" in case and (not only or program in only or any(d["id"] in only for d in case["defects"])):
                twins.append((program, twin_has_nothing(args.nanguard, case, program)))
    if args.json:
        json.dump({"rows": rows, "twins": twins}, open(args.json, "w"))
    write(args, modes, rows, twins)


def write(args, modes, rows, twins):
    n = len(rows)
    lines = ["# nanguard fix on the GRIST corpus", "",
             f"Command: `/usr/bin/python3 scripts/fix_corpus.py --budget {args.budget:g} --samples {args.samples} "
             f"--range-budget {args.range_budget:g}` (this 2-core machine). Per program: `fix --at MODE` (all findings), "
             "then `validate FIXED --original MODEL` (proof + attacks); a defect is validated when its whole fixed model holds. `kept`: mean new width / "
             "old width over the tensors a mode may narrow (a rewrite keeps 1). `kept, all nodes`: RANUM's measure (1 - the "
             "`average_shrinkage` of its per-case logs), the mean over every input and weight with a range, those the mode may not "
             "narrow counted whole. RANUM's logs (read by `scripts/ranum_logs.py`) also count constants, at shrinkage 0; "
             "`RANUM kept, ranged nodes` leaves them out, as ours does. Both depend on how many nodes a graph has (RANUM's "
             "graphs and ours differ: a bias, a label input), and `mean of least kept`, the share kept of the most "
             "narrowed tensor, does not. Starting ranges differ too (RANUM's inputs [-50, 50], ours the case's, often [0, 1]). "
             "Seconds: the fix command's wall time, LibTorch start-up included.", "",
             "`proved unfixable`: findings the mode cannot remove, with a proof (the tensors it may not narrow pinned to "
             "values in their ranges make the analysis bound the operand inside the hazard's condition for every value of those it "
             "may narrow, and 8 sampled runs fail at the node).", "",
             "| mode | fixed (proved) | validated | proved unfixable | mean kept | mean of least kept | kept, all nodes | agreement on normal inputs | "
             "agreement with the human fix | median s | max s | RANUM fixed | RANUM kept, all nodes (constants whole) | "
             "RANUM kept, ranged nodes | RANUM mean of least kept |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in modes:
        sel = [r[m] for r in rows]
        fixed = [s for s in sel if s["fixed"]]
        val = [s for s in sel if s["validated"]]
        kept = statistics.mean(s["kept"] for s in fixed) if fixed else 0
        least = statistics.mean(s["min_kept"] for s in fixed) if fixed else 0
        kept_all = [s["kept_all"] for s in fixed if s.get("kept_all") is not None]
        agree = [s["agreement"] for s in fixed if s["agreement"] is not None]
        human = [s["human_agreement"] for s in fixed if s.get("human_agreement") is not None]
        secs = [s["seconds"] for s in sel]
        rf = RANUM.get(m)
        mean = lambda v: f"{statistics.mean(v):.3f}" if v else "-"
        unfixable = sum(1 for s in sel if s.get("unremovable"))
        lines.append(f"| {m} | {len(fixed)}/{n} | {len(val)}/{n} | {unfixable} | {kept:.3f} | {least:.3f} | {mean(kept_all)} | {mean(agree)} | {mean(human)} | "
                     f"{statistics.median(secs):.2f} | {max(secs):.2f} | " +
                     (f"{rf['fixed']}/79 | {rf['kept_reported']:.3f} | {rf['kept_ranged']:.3f} | {rf['least_kept']:.3f} |"
                      if rf else "- | - | - | - |"))
    ok = sum(1 for _, t in twins if t)
    lines += ["", f"Fixed twins with nothing to fix (no finding, no model written): **{ok} of {len(twins)}**.", "",
              "| defect | hazard | " + " | ".join(modes) + " |", "|---|---|" + "---|" * len(modes)]
    for r in rows:
        cells = []
        for m in modes:
            s = r[m]
            if not s["fixed"] and s.get("unremovable"):
                cells.append("no, proved unfixable by this mode")
            elif not s["fixed"]:
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
