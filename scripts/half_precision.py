"""How GRIST's programs and their fixed twins change verdict when the float32 model runs in
half precision: `nanguard --precision P` for P in fp16, bf16 (the model as after
`model.half()` / `model.bfloat16()`: every float initializer, input, output, Cast and
Constant in the type) and autocast-fp16, autocast-bf16 (torch.autocast: matrix products
and convolutions in the type, softmax, log, exp, norms, sums and losses in float32).

    /usr/bin/python3 scripts/half_precision.py [--precisions fp16,bf16,...] [--budget S]
        [--only 3,11,...] [--samples N] [--nanguard build/nanguard] [--out results/half-precision.md]

Per program and twin: `nanguard analyze` natively and under each precision (forward and
gradient findings; the gradients of a half model are bounded backward in their type),
`nanguard soundcheck` under each
(sampled real runs of the rewritten model against its bounds), and for a twin that is
forward-clean in float32 but not in the precision, `nanguard trigger --budget S`: a
witness there is a real failure of the model as it runs in that precision.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from analyze_corpus import case_args, grist_cases  # noqa: E402

def flag(precision):
    return [] if precision == "native" else ["--precision", precision]


def analyze(nanguard, path, case, precision="native"):
    p = subprocess.run([nanguard, "analyze", path, "--format", "json"] + flag(precision) + case_args(case),
                       capture_output=True, text=True)
    if p.returncode not in (0, 1):
        return None, p.stderr.strip().splitlines()[-1][:120] if p.stderr.strip() else "error"
    j = json.loads(p.stdout)
    fwd = sorted({f["node"] + ":" + f["hazard"] for f in j["findings"] if f["kind"] == "forward"})
    grad = sorted({f["node"] + ":" + f["hazard"] for f in j["findings"] if f["kind"] == "gradient"})
    return (fwd, grad), ""


def soundcheck(nanguard, path, case, samples, precision):
    """(samples, values compared, violations) of sampled real runs against the bounds."""
    p = subprocess.run([nanguard, "soundcheck", path, "--samples", str(samples), "--budget", "20", "--format", "json"] +
                       flag(precision) + case_args(case), capture_output=True, text=True)
    if p.returncode not in (0, 1):
        return None
    j = json.loads(p.stdout)
    return j["samples"], j["checked_values"], len(j["violations"]), j.get("backward_samples", 0)


def trigger(nanguard, path, case, budget, precision):
    p = subprocess.run([nanguard, "trigger", path, "--budget", str(budget), "--quiet", "--format", "json"] +
                       flag(precision) + case_args(case),
                       capture_output=True, text=True)
    if p.returncode not in (0, 1):
        return []
    return [f["node"] + ":" + f["hazard"] for f in json.loads(p.stdout)["findings"] if f["status"] == "triggered"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--precisions", default="fp16,bf16,autocast-fp16,autocast-bf16")
    ap.add_argument("--budget", type=float, default=5)
    ap.add_argument("--only", default="")
    ap.add_argument("--samples", type=int, default=20, help="soundcheck samples per model and precision (0: none)")
    ap.add_argument("--nanguard", default=os.path.join(ROOT, "build", "nanguard"))
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "half-precision.md"))
    args = ap.parse_args()
    types = args.precisions.split(",")
    only = set(args.only.split(",")) if args.only else None
    rows = []
    for program, case, model_path in grist_cases():
        if only and program not in only:
            continue
        variants = [("defect", model_path)]
        if "fixed" in case:
            variants.append(("twin", os.path.join(os.path.dirname(model_path), case["fixed"]["model"])))
        for role, path in variants:
            if not os.path.exists(path):
                continue
            base, err = analyze(args.nanguard, path, case)
            row = {"program": program, "role": role, "float32": base and base[0], "float32_grad": base and base[1],
                   "error": err}
            for t in types:
                both, row[t + "_error"] = analyze(args.nanguard, path, case, t)
                row[t], row[t + "_grad"] = both if both else (None, None)
                if row[t] is not None and args.samples > 0:
                    row[t + "_sound"] = soundcheck(args.nanguard, path, case, args.samples, t)
                if role == "twin" and row["float32"] == [] and row[t]:
                    row[t + "_triggered"] = trigger(args.nanguard, path, case, args.budget, t)
            print(program, role, {k: v for k, v in row.items() if k not in ("program", "role")}, flush=True)
            rows.append(row)
    write(args, types, rows)


def write(args, types, rows):
    lines = ["# GRIST in half precision", "",
             f"Command: `/usr/bin/python3 scripts/half_precision.py --budget {args.budget:g} --samples {args.samples}`. Each float32 "
             "model analysed with the case's ranges natively and with `--precision P`: fp16 / bf16 rewrite it whole in the type "
             "(initializers, inputs, outputs, Casts, Constants), as after `model.half()`; autocast-fp16 / autocast-bf16 as under "
             "torch.autocast (MatMul, Gemm, Conv in the type; softmax, log, exp, norms, sums, losses in float32; every other op "
             "in the widest type of its activations). Findings are counted as (node, hazard). Gradients have their tensor's type: "
             "the gradient hazards take its limit, and a model with half tensors gets the backward bound from a loss gradient "
             "of 1 (`gradient-overflow` past the type, `gradient-unbounded` through an op without a backward rule). A model "
             "is proved when it has no finding at all.", ""]
    lines += ["| precision | models converted and analysed | defects: more forward findings than float32 | twins: forward-clean in float32 | of those, with forward findings in the type | of those, triggered (real run of the half model) | twins proved in float32 | of those, proved in the type | models with gradient findings the type adds (overflow, unbounded) | soundcheck: models, samples, backward samples, values, violations |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for t in types:
        ok = [r for r in rows if r.get(t) is not None and r["float32"] is not None]
        worse = [r for r in ok if r["role"] == "defect" and len(r[t]) > len(r["float32"])]
        clean = [r for r in ok if r["role"] == "twin" and r["float32"] == []]
        flagged = [r for r in clean if r[t]]
        trig = [r for r in flagged if r.get(t + "_triggered")]
        proved32 = [r for r in clean if not r["float32_grad"]]
        proved = [r for r in proved32 if not r[t] and not r[t + "_grad"]]
        added = [sorted(set(r[t + "_grad"]) - set(r["float32_grad"])) for r in ok]
        over = sum(1 for a in added if any(h.endswith(":gradient-overflow") for h in a))
        unb = sum(1 for a in added if any(h.endswith(":gradient-unbounded") for h in a))
        sound = [r[t + "_sound"] for r in rows if r.get(t + "_sound")]
        sc = (f"{len(sound)}, {sum(x[0] for x in sound)}, {sum(x[3] for x in sound)}, {sum(x[1] for x in sound)}, "
              f"{sum(x[2] for x in sound)}")
        lines.append(f"| {t} | {len(ok)}/{len(rows)} | {len(worse)} | {len(clean)} | {len(flagged)} | "
                     f"{len(trig)} | {len(proved32)} | {len(proved)} | {sum(1 for a in added if a)} ({over}, {unb}) | {sc} |")
    lines += ["", "Per model, the findings that the type adds (forward, then gradient; or the conversion or analysis error):", "",
              "| program | model | " + " | ".join(types) + " |", "|---|---|" + "---|" * len(types)]
    for r in rows:
        cells = []
        for t in types:
            if r.get(t) is None:
                cells.append("error: " + (r.get(t + "_error") or r["error"] or "-").replace("|", "/")[:70])
                continue
            added = sorted(set(r[t]) - set(r["float32"] or []))
            grad = sorted(set(r[t + "_grad"]) - set(r["float32_grad"] or []))
            cell = ", ".join(added) if added else "same"
            if grad:
                cell += "; gradient: " + ", ".join(grad)
            if r.get(t + "_sound") and r[t + "_sound"][2]:
                cell += f" ({r[t + '_sound'][2]} SOUNDNESS VIOLATIONS)"
            if r.get(t + "_triggered"):
                cell += " (triggered: " + ", ".join(r[t + "_triggered"]) + ")"
            cells.append(cell.replace("|", "/"))
        lines.append(f"| {r['program']} | {r['role']} | " + " | ".join(cells) + " |")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
