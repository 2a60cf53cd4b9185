"""Runs `nanguard analyze` on every GRIST case and fixed twin and scores it.

A defect counts as found when a finding names its node, or an op on the same faulty
path (an ancestor or descendant of the defect node). Findings on the fixed twins are
false alarms; op-domain hazards (log, exp, div, sqrt...) are counted apart from
`overflow` and `unsupported`. Writes a markdown table (default results/analyzer-grist.md).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import onnx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRIST = os.path.join(ROOT, "corpora", "grist")
META = {"overflow", "unsupported"}


def related_nodes(model_path, node_name):
    """Names of the node's ancestors and descendants (and itself)."""
    g = onnx.load(model_path, load_external_data=False).graph
    producer = {o: n.name for n in g.node for o in n.output}
    inputs = {n.name: list(n.input) for n in g.node}
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    up, stack = set(), [node_name]
    while stack:
        cur = stack.pop()
        if cur in up:
            continue
        up.add(cur)
        stack += [producer[i] for i in inputs.get(cur, []) if i in producer]
    down, stack = set(), [node_name]
    outputs = {n.name: list(n.output) for n in g.node}
    while stack:
        cur = stack.pop()
        if cur in down:
            continue
        down.add(cur)
        for o in outputs.get(cur, []):
            stack += [c.name for c in consumers.get(o, [])]
    return up | down


def case_args(case):
    """The nanguard flags for a case.json: input ranges, weight mode, dimensions."""
    args = []
    for name, (lo, hi) in case["inputs"].items():
        args += ["--range", f"{name}={lo},{hi}"]
    w = case.get("weights", {"mode": "fixed"})
    if w.get("mode") == "free":
        args += ["--weights", "free" if "range" not in w else f"free={w['range'][0]},{w['range'][1]}"]
    for name, n in case.get("dims", {}).items():
        args += ["--dim", f"{name}={n}"]
    return args


def grist_cases():
    """(program, case, model path) for every GRIST program, in program order."""
    for prog in sorted(os.listdir(GRIST), key=lambda s: (len(s), s)):
        case_path = os.path.join(GRIST, prog, "case.json")
        if os.path.exists(case_path):
            yield prog, json.load(open(case_path)), os.path.join(GRIST, prog, "model.onnx")


def analyze(nanguard, model, case, extra=()):
    args = [nanguard, "analyze", model, "--format", "json"] + case_args(case) + list(extra)
    t0 = time.time()
    p = subprocess.run(args, capture_output=True, text=True)
    dt = time.time() - t0
    if p.returncode not in (0, 1):
        return None, dt, p.stderr.strip()
    return json.loads(p.stdout)["findings"], dt, ""


def zoo(nanguard, out):
    """The clean architectures: op-domain findings on the safe variants are false
    alarms; overflow findings are listed with their bounds; the naive head must be found."""
    cases = json.load(open(os.path.join(ROOT, "corpora", "zoo", "cases.json")))
    cache = os.path.join(ROOT, "corpora", "zoo", "cache")
    lines = ["# nanguard analyze on the zoo", "",
             "Command: `/usr/bin/python3 scripts/analyze_corpus.py --zoo` (models from `scripts/corpus --zoo`, "
             "weights fixed, ranges from corpora/zoo/cases.json). `plain`: logits; `naive`: log(softmax) head; "
             "`safe`: log_softmax head. Seconds include loading.", "",
             "| model | variant | op-domain findings | overflow findings (first node: bound) | naive head found | seconds |",
             "|---|---|---|---|---|---:|"]
    for name, case in cases.items():
        for variant, file in (("plain", "plain.onnx"), ("naive", "model.onnx"), ("safe", "fixed.onnx")):
            path = os.path.join(cache, name, file)
            if not os.path.exists(path):
                continue
            findings, dt, err = analyze(nanguard, path, case)
            if findings is None:
                lines.append(f"| {name} | {variant} | error: {err} | | | {dt:.1f} |")
                continue
            domain = [f"{f['node']}:{f['hazard']}" for f in findings if f["hazard"] not in META]
            over = [f for f in findings if f["hazard"] == "overflow"]
            bound = over[0].get("result", {}).get("hi") if over else None
            bound = f"{bound:.3g}" if isinstance(bound, (int, float)) else str(bound)
            over_s = f"{len(over)}" + (f" ({over[0]['node']}: {bound})" if over else "")
            head = ""
            if variant == "naive":
                truth = {d["node"] for d in case["defects"]}
                head = "yes" if truth & {f["node"] for f in findings} else "no"
            lines.append(f"| {name} | {variant} | {len(domain)} {' '.join(domain[:3])} | {over_s} | {head} | {dt:.1f} |")
            print(lines[-1], flush=True)
    open(out, "w").write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zoo", action="store_true", help="analyze the exported zoo instead")
    ap.add_argument("--nanguard", default=os.path.join(ROOT, "build", "nanguard"))
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "analyzer-grist.md"))
    ap.add_argument("--gradients", choices=["auto", "chain", "local"], help="passed to nanguard analyze")
    args = ap.parse_args()
    flags = ["--gradients", args.gradients] if args.gradients else []
    if args.zoo:
        return zoo(args.nanguard, os.path.join(ROOT, "results", "analyzer-zoo.md"))
    rows, found, total, twins_alarm, errors = [], 0, 0, 0, 0
    per_op = {}
    for prog, case, model in grist_cases():
        findings, dt, err = analyze(args.nanguard, model, case, flags)
        if findings is None:
            errors += 1
            rows.append(f"| {prog} | error: {err} | | | |")
            continue
        flagged = {f["node"] for f in findings if f["hazard"] not in META}
        got = []
        for d in case["defects"]:
            total += 1
            hit = bool(flagged & related_nodes(model, d["node"]))
            exact = any(f["node"] == d["node"] and f["hazard"] == d["hazard"] for f in findings)
            found += hit
            op = per_op.setdefault(d["op"], [0, 0])
            op[0] += hit
            op[1] += 1
            got.append(f"{d['id']}:{'exact' if exact else 'path' if hit else 'MISSED'}")
        fixed = os.path.join(GRIST, prog, case["fixed"]["model"])
        tf, tdt, terr = analyze(args.nanguard, fixed, case, flags)
        if tf is None:
            twin = f"error: {terr}"
        else:
            domain = [f"{f['node']}:{f['hazard']}" for f in tf if f["hazard"] not in META]
            meta = [f"{f['node']}:{f['hazard']}" for f in tf if f["hazard"] in META]
            twins_alarm += bool(domain)
            twin = (", ".join(domain) or "proved safe") + (f" (+{len(meta)} overflow/unsupported)" if meta else "")
        extra = len([f for f in findings if f["hazard"] not in META]) - len(case["defects"])
        rows.append(f"| {prog} | {' '.join(got)} | {max(extra, 0)} | {twin} | {dt:.2f} / {tdt:.2f} |")
        print(rows[-1], flush=True)
    summary = (f"defects found: {found} of {total}; fixed twins with op-domain false alarms: "
               f"{twins_alarm} of {len(rows) - errors}; errors: {errors}")
    ops = ", ".join(f"{op} {a}/{b}" for op, (a, b) in sorted(per_op.items()))
    with open(args.out, "w") as f:
        f.write("# nanguard analyze on the GRIST corpus\n\n")
        shown = "".join(f" {x}" for x in flags) + (f" --out {os.path.relpath(args.out, ROOT)}" if flags else "")
        f.write(f"Command: `/usr/bin/python3 scripts/analyze_corpus.py{shown}` (ranges and weight mode from each "
                "case.json). A defect is found when its node or an op on its path is flagged with an "
                "op-domain hazard; `exact` when the node and hazard both match.\n\n")
        f.write(f"**{summary}**; by op: {ops}\n\n")
        f.write("| program | defects | other op-domain findings | fixed twin | seconds (model / twin) |\n|---|---|---|---|---|\n")
        f.write("\n".join(rows) + "\n")
    print(summary)
    print("by op:", ops)


if __name__ == "__main__":
    sys.exit(main())
