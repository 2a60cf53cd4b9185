"""Drives `nanguard soundcheck` over the GRIST cases, their twins and the ONNX node
tests, and tabulates sampled executions and violations (results/soundness.md)."""
import argparse
import datetime
import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE_TESTS = "/usr/share/libonnx-testdata/data/node"


def soundcheck(nanguard, model, ranges, weights, samples, budget, extra=()):
    args = [nanguard, "soundcheck", model, "--samples", str(samples), "--budget", str(budget), "--format", "json"]
    args += list(extra)
    for name, (lo, hi) in ranges.items():
        args += ["--range", f"{name}={lo},{hi}"]
    if weights:
        args += ["--weights", weights]
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode not in (0, 1):
        return None, p.stderr.strip() or f"exit code {p.returncode}"
    return json.loads(p.stdout), ""


def weights_flag(case):
    w = case.get("weights", {"mode": "fixed"})
    if w.get("mode") != "free":
        return ""
    return "free" if "range" not in w else f"free={w['range'][0]},{w['range'][1]}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--budget", type=float, default=4.0, help="seconds of sampling per model at most")
    ap.add_argument("--nanguard", default=os.path.join(ROOT, "build", "nanguard"))
    ap.add_argument("--norm-above", help="passed to soundcheck (1e-300: every op's norm facet runs)")
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "soundness.md"))
    args = ap.parse_args()
    extra = ["--norm-above", args.norm_above] if args.norm_above else []
    total_runs = total_values = total_backward = total_grads = total_stopped = 0
    violations, skipped, rows, bad_models = [], [], [], {}
    grist = os.path.join(ROOT, "corpora", "grist")
    jobs = []
    for prog in sorted(os.listdir(grist), key=lambda s: (len(s), s)):
        cp = os.path.join(grist, prog, "case.json")
        if os.path.exists(cp):
            case = json.load(open(cp))
            for f in ("model.onnx", case["fixed"]["model"]):
                jobs.append((f"grist/{prog}/{f}", os.path.join(grist, prog, f), case["inputs"], weights_flag(case)))
    if os.path.isdir(NODE_TESTS):
        for t in sorted(os.listdir(NODE_TESTS)):
            jobs.append((f"node/{t}", os.path.join(NODE_TESTS, t, "model.onnx"), {}, ""))
    for label, model, ranges, weights in jobs:
        rep, err = soundcheck(args.nanguard, model, ranges, weights, args.samples, args.budget, extra)
        if rep is None:
            skipped.append(f"{label}: {err}")
            continue
        total_runs += rep["samples"]
        total_values += rep["checked_values"]
        total_backward += rep.get("backward_samples", 0)
        total_grads += rep.get("gradient_values", 0)
        total_stopped += rep.get("stopped_samples", 0)
        for v in rep["violations"]:
            violations.append(f"{label}: {v}")
        if rep["violations"]:
            kinds = sorted({v["what"] for v in rep["violations"]})
            bad_models[label] = f"{len(rep['violations'])} ({', '.join(kinds)}; first at node {rep['violations'][0]['node']})"
        if label.startswith("grist"):
            rows.append(f"| {label} | {rep['samples']} | {rep['checked_values']} | {rep.get('backward_samples', 0)} | "
                        f"{rep.get('gradient_values', 0)} | {rep.get('stopped_samples', 0)} | {len(rep['violations'])} |")
    summary = (f"{total_runs} sampled executions, {total_values} values checked; {total_backward} backward passes, "
               f"{total_grads} gradient values checked; {total_stopped} runs stopped by an error; "
               f"{len(violations)} violations; {len(skipped)} models skipped (unsupported or unloadable)")
    shown = f" --norm-above {args.norm_above}" if args.norm_above else ""
    with open(args.out, "w") as f:
        f.write(f"# Soundness by sampling\n\n`scripts/soundness.py --samples {args.samples} --budget {args.budget:g}{shown}`, "
                f"{datetime.date.today()}. "
                "Each execution draws inputs (and free weights) inside the analysed box: the box corners, "
                "float32 edge values, uniform draws; every node's values must lie within its abstract "
                "bounds and every NaN/INF must have been reported. A run whose forward values stay finite "
                "also runs a backward pass: a NaN/INF gradient born at a node without a finding is a violation. "
                "A run that throws is a violation unless its node has a `crash` finding (or lies after a finding).\n\n")
        f.write(f"**{summary}**\n\n")
        if violations:
            f.write("## Models with violations\n\n" + "\n".join(f"- {m}: {d}" for m, d in bad_models.items()) + "\n\n")
            f.write("## First violations\n\n" + "\n".join(f"- {v}" for v in violations[:50]) + "\n\n")
        f.write("| GRIST model | executions | values checked | backward passes | gradient values | stopped | violations |\n"
                "|---|---:|---:|---:|---:|---:|---:|\n")
        f.write("\n".join(rows) + "\n\n## Skipped\n\n" + "\n".join(f"- {s}" for s in skipped) + "\n")
    print(summary)
    for m, d in bad_models.items():
        print("VIOLATIONS", m, d)


if __name__ == "__main__":
    main()
