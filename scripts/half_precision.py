"""How GRIST's programs and their fixed twins change verdict when the whole model runs
in float16 or bfloat16 (every float initializer, input, output, Cast and Constant
converted: the model as `model.half()` exports it).

    /usr/bin/python3 scripts/half_precision.py [--types float16,bfloat16] [--budget S]
        [--only 3,11,...] [--nanguard build/nanguard] [--out results/half-precision.md]

Per program and twin: `nanguard analyze` of the float32 model and of each half
variant (the forward findings; the half variants also carry one gradient finding,
`unmodelled-precision`, since their backward pass is not modelled). A twin that is
forward-clean in float32 but has forward findings in the half type is searched with
`nanguard trigger --budget S`: a witness there is a real failure of the half model
(confirmed by a real run, replayable).
"""
import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from analyze_corpus import case_args, grist_cases  # noqa: E402

TYPES = {"float16": TensorProto.FLOAT16, "bfloat16": TensorProto.BFLOAT16}


def half_tensor(t, elem):
    """A FLOAT TensorProto as `elem` (bfloat16: round to nearest even on the bits)."""
    arr = numpy_helper.to_array(t).astype(np.float32)
    if elem == TensorProto.FLOAT16:
        out = numpy_helper.from_array(arr.astype(np.float16), t.name)
    else:
        bits = arr.view(np.uint32).astype(np.uint64)
        sixteen, one = np.uint64(16), np.uint64(1)
        rounded = ((bits + np.uint64(0x7FFF) + ((bits >> sixteen) & one)) >> sixteen).astype(np.uint16)
        out = onnx.helper.make_tensor(t.name, TensorProto.BFLOAT16, arr.shape, rounded.tobytes(), raw=True)
    return out


def convert(model, elem):
    m = copy.deepcopy(model)
    g = m.graph
    for i, t in enumerate(g.initializer):
        if t.data_type == TensorProto.FLOAT:
            g.initializer[i].CopyFrom(half_tensor(t, elem))
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = elem
    for node in g.node:
        for a in node.attribute:
            if node.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = elem
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT:
                a.t.CopyFrom(half_tensor(a.t, elem))
    return m


def analyze(nanguard, path, case):
    p = subprocess.run([nanguard, "analyze", path, "--format", "json"] + case_args(case), capture_output=True, text=True)
    if p.returncode not in (0, 1):
        return None, p.stderr.strip().splitlines()[-1][:120] if p.stderr.strip() else "error"
    j = json.loads(p.stdout)
    fwd = sorted({f["node"] + ":" + f["hazard"] for f in j["findings"] if f["kind"] == "forward"})
    return fwd, ""


def soundcheck(nanguard, path, case, samples):
    """(samples, values compared, violations) of sampled real runs against the bounds."""
    p = subprocess.run([nanguard, "soundcheck", path, "--samples", str(samples), "--budget", "20", "--format", "json"] +
                       case_args(case), capture_output=True, text=True)
    if p.returncode not in (0, 1):
        return None
    j = json.loads(p.stdout)
    return j["samples"], j["checked_values"], len(j["violations"])


def trigger(nanguard, path, case, budget):
    p = subprocess.run([nanguard, "trigger", path, "--budget", str(budget), "--quiet", "--format", "json"] + case_args(case),
                       capture_output=True, text=True)
    if p.returncode not in (0, 1):
        return []
    return [f["node"] + ":" + f["hazard"] for f in json.loads(p.stdout)["findings"] if f["status"] == "triggered"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--types", default="float16,bfloat16")
    ap.add_argument("--budget", type=float, default=5)
    ap.add_argument("--only", default="")
    ap.add_argument("--samples", type=int, default=20, help="soundcheck samples per half model (0: none)")
    ap.add_argument("--nanguard", default=os.path.join(ROOT, "build", "nanguard"))
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "half-precision.md"))
    args = ap.parse_args()
    types = args.types.split(",")
    only = set(args.only.split(",")) if args.only else None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
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
                row = {"program": program, "role": role, "float32": base, "error": err}
                model = onnx.load(path)
                for t in types:
                    hp = os.path.join(tmp, f"{program}-{role}-{t}.onnx")
                    onnx.save(convert(model, TYPES[t]), hp)
                    row[t], row[t + "_error"] = analyze(args.nanguard, hp, case)
                    if row[t] is not None and args.samples > 0:
                        row[t + "_sound"] = soundcheck(args.nanguard, hp, case, args.samples)
                    if role == "twin" and t == "float16" and base == [] and row[t]:
                        row["float16_triggered"] = trigger(args.nanguard, hp, case, args.budget)
                print(program, role, {k: v for k, v in row.items() if k not in ("program", "role")}, flush=True)
                rows.append(row)
    write(args, types, rows)


def write(args, types, rows):
    lines = ["# GRIST in half precision", "",
             f"Command: `/usr/bin/python3 scripts/half_precision.py --budget {args.budget:g} --samples {args.samples}`. Each model converted whole to "
             "the type (initializers, inputs, outputs, Casts, Constants), as `model.half()` exports it, analysed with the "
             "case's ranges. Counts are of forward findings (node, hazard); every half model also carries one gradient "
             "finding, `unmodelled-precision` (its backward pass is not modelled), so none is ever reported proved.", ""]
    lines += ["| type | models converted and analysed | defects: more forward findings than float32 | twins: forward-clean in float32 | of those, with forward findings in the type | of those, triggered (real run of the half model) | soundcheck: models, samples, values, violations |",
              "|---|---|---|---|---|---|---|"]
    for t in types:
        ok = [r for r in rows if r.get(t) is not None and r["float32"] is not None]
        worse = [r for r in ok if r["role"] == "defect" and len(r[t]) > len(r["float32"])]
        clean = [r for r in ok if r["role"] == "twin" and r["float32"] == []]
        flagged = [r for r in clean if r[t]]
        trig = [r for r in flagged if r.get(t + "_triggered")] if t == "float16" else []
        sound = [r[t + "_sound"] for r in rows if r.get(t + "_sound")]
        sc = f"{len(sound)}, {sum(x[0] for x in sound)}, {sum(x[1] for x in sound)}, {sum(x[2] for x in sound)}"
        lines.append(f"| {t} | {len(ok)}/{len(rows)} | {len(worse)} | {len(clean)} | {len(flagged)} | "
                     f"{len(trig) if t == 'float16' else '-'} | {sc} |")
    lines += ["", "Per model, the forward findings that the type adds (or the conversion or analysis error):", "",
              "| program | model | " + " | ".join(types) + " |", "|---|---|" + "---|" * len(types)]
    for r in rows:
        cells = []
        for t in types:
            if r.get(t) is None:
                cells.append("error: " + (r.get(t + "_error") or r["error"] or "-").replace("|", "/")[:70])
                continue
            added = sorted(set(r[t]) - set(r["float32"] or []))
            cell = ", ".join(added) if added else "same"
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
