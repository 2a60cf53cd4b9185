"""`scripts/corpus --check`: is every corpus case well formed, current, and run right?

For every GRIST case and its fixed twin (and every zoo case already exported):
  1. case.json has the agreed schema; its inputs are the graph's inputs; every truth
     node exists in model.onnx with the stated op type; the ONNX checker passes;
  2. re-exporting gives the same bytes as the file on disk (deterministic and current);
  3. the PyTorch module and nanguard's executor (`nanguard run ... --save-outputs`) get
     the same random in-range inputs and must agree (rtol 1e-4, atol 1e-5; NaN = NaN,
     INF signs equal). Graphs with random nodes (48a) are compared by shape only.
Then the GRIST totals are compared with the catalogue: 63 programs, 79 defects, Log 59,
Exp 9, Div 6, Sqrt 5. Exits 1 on any failure.

Until the executor exists (or while it rejects a model for unsupported ops) the
comparison is reported as skipped, with the ops it lacks; --strict makes that a failure.
"""
import argparse
import collections
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import torch
from onnx import numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "corpora", "grist"))
from registry import all_cases, sample_inputs  # noqa: E402


def load(rel_path, name):
    """Imports a corpus script by path (both corpora have an export.py)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, rel_path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


grist_export = load("corpora/grist/export.py", "grist_export")

EXPECTED = {"programs": 63, "defects": 79, "Log": 59, "Exp": 9, "Div": 6, "Sqrt": 5}
CASE_KEYS = {"program", "framework", "description", "inputs", "input_notes", "weights",
             "dims", "defects", "fixed"}
DEFECT_KEYS = {"id", "node", "op", "kind", "hazard", "note"}
RANDOM_OPS = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
              "Multinomial", "Bernoulli"}
RTOL, ATOL = 1e-4, 1e-5


class Report:
    def __init__(self):
        self.failures, self.skipped, self.compared = [], collections.Counter(), 0
        self.max_rel = 0.0

    def fail(self, where, msg):
        self.failures.append(f"{where}: {msg}")
        print(f"FAIL {where}: {msg}", flush=True)


def check_case_json(where, case_doc, graph, rep):
    if set(case_doc) != CASE_KEYS:
        rep.fail(where, f"case.json keys {sorted(case_doc)} != {sorted(CASE_KEYS)}")
    graph_inputs = [i.name for i in graph.input]
    if list(case_doc["inputs"]) != graph_inputs:
        rep.fail(where, f"case inputs {list(case_doc['inputs'])} != graph inputs {graph_inputs}")
    ops = {n.name: n.op_type for n in graph.node}
    for d in case_doc["defects"]:
        if set(d) != DEFECT_KEYS:
            rep.fail(where, f"defect {d.get('id')} keys {sorted(d)}")
        if ops.get(d["node"]) != d["op"]:
            rep.fail(where, f"defect {d['id']}: node {d['node']} is {ops.get(d['node'])}, "
                     f"not {d['op']}")
        if d["kind"] not in ("forward", "gradient"):
            rep.fail(where, f"defect {d['id']}: kind {d['kind']}")


def as_numpy(outputs):
    if isinstance(outputs, torch.Tensor):
        outputs = (outputs,)
    return [o.detach().numpy() for o in outputs]


def compare(ref, got):
    """(ok, max relative difference over finite elements)."""
    if ref.shape != got.shape:
        return False, float("inf")
    if not np.array_equal(np.isnan(ref), np.isnan(got)):
        return False, float("inf")
    inf = np.isinf(ref)
    if not np.array_equal(inf, np.isinf(got)) or not np.array_equal(ref[inf], got[inf]):
        return False, float("inf")
    fin = np.isfinite(ref)
    if not fin.any():
        return True, 0.0
    r, g = ref[fin].astype(np.float64), got[fin].astype(np.float64)
    rel = float(np.max(np.abs(r - g) / np.maximum(np.abs(r), 1e-30)))
    return bool(np.allclose(g, r, rtol=RTOL, atol=ATOL)), rel


def run_executor(binary, model_path, names, inputs, tmp):
    """Runs nanguard; returns ("ok", outputs) / ("unsupported", ops) / ("error", message)."""
    args = [binary, "run", model_path, "--format", "json", "--save-outputs",
            os.path.join(tmp, "out")]
    for name, t in zip(names, inputs):
        path = os.path.join(tmp, f"{name}.pb")
        with open(path, "wb") as f:
            f.write(numpy_helper.from_array(t.numpy(), name).SerializeToString())
        args += ["--input", f"{name}={path}"]
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:  # e.g. the binary is being relinked
        return "error", str(e)
    if p.returncode not in (0, 1):  # 1 only says some node produced NaN/INF
        msg = (p.stderr or p.stdout).strip()
        m = re.search(r"unsupported ONNX ops?: (.*)", msg)
        if m:
            return "unsupported", m.group(1).strip()
        return "error", f"exit {p.returncode}: {msg[-300:]}"
    outs, k = [], 0
    while os.path.exists(os.path.join(tmp, "out", f"output_{k}.pb")):
        outs.append(numpy_helper.to_array(onnx.load_tensor(os.path.join(tmp, "out", f"output_{k}.pb"))))
        k += 1
    return "ok", outs


def check_run(where, model_path, graph, module, names, inputs, binary, rep):
    """Compares the PyTorch module with nanguard's executor; returns a one-word status."""
    with torch.no_grad():
        ref = as_numpy(module(*inputs))
    if binary is None:
        rep.skipped["no executor"] += 1
        return "graph-only"
    tmp = tempfile.mkdtemp(prefix="corpus-check-")
    try:
        status, got = run_executor(binary, model_path, names, inputs, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if status == "unsupported":
        for op in got.split(", "):
            rep.skipped[f"unsupported op {op}"] += 1
        rep.skipped["models with unsupported ops"] += 1
        if rep.strict:
            rep.fail(where, f"executor lacks {got}")
        return "unsupported-ops"
    if status == "error":
        rep.fail(where, got)
        return "ERROR"
    if len(got) != len(ref):
        rep.fail(where, f"{len(got)} outputs from nanguard, {len(ref)} from PyTorch")
        return "MISMATCH"
    stochastic = any(n.op_type in RANDOM_OPS for n in graph.node)
    worst, status = 0.0, "agrees"
    for k, (r, g) in enumerate(zip(ref, got)):
        ok, rel = (r.shape == g.shape, 0.0) if stochastic else compare(r, g)
        worst = max(worst, rel if np.isfinite(rel) else 0.0)
        if not ok:
            status = "MISMATCH"
            rep.fail(where, f"output {k} differs (max rel {rel:.3g}; torch {r.ravel()[:3]}, "
                     f"nanguard {g.ravel()[:3]})")
    rep.max_rel = max(rep.max_rel, worst)
    rep.compared += 1
    return "shape-only" if stochastic and status == "agrees" else f"{status}({worst:.2g})"


def check_grist(binary, rep, only):
    cases = all_cases()
    counts = collections.Counter(programs=len(cases))
    for case in cases:
        counts["defects"] += len(case.defects)
        counts.update(d.op for d in case.defects)
    print("grist counts: " + ", ".join(f"{k} {counts[k]} (expected {v})"
                                       for k, v in EXPECTED.items()), flush=True)
    for k, v in EXPECTED.items():
        if counts[k] != v:
            rep.fail("grist", f"{k}: {counts[k]} != {v}")
    for case in cases:
        if only and case.program not in only:
            continue
        folder = os.path.join(ROOT, "corpora", "grist", case.program)
        with open(os.path.join(folder, "case.json")) as f:
            doc = json.load(f)
        if doc["program"] != case.program or doc["fixed"].get("safe") is not True:
            rep.fail(f"grist/{case.program}", "program id or fixed.safe wrong in case.json")
        inputs = sample_inputs(case, seed=1)
        names = [i.name for i in case.inputs]
        status = []
        for name, fixed in (("model.onnx", False), ("fixed.onnx", True)):
            where = f"grist/{case.program}/{name}"
            path = os.path.join(folder, name)
            model = onnx.load(path)
            onnx.checker.check_model(model)
            if not fixed:
                check_case_json(where, doc, model.graph, rep)
            with open(path, "rb") as f:
                if f.read() != grist_export.export_bytes(case, fixed):
                    rep.fail(where, "re-export differs from the file (stale or nondeterministic)")
            torch.manual_seed(int(case.program))
            module = case.build(fixed).eval()
            status.append(check_run(where, path, model.graph, module, names, inputs, binary, rep))
        print(f"grist {case.program}: model {status[0]}, fixed {status[1]}", flush=True)


def check_zoo(binary, rep):
    """Zoo cases already exported into corpora/zoo/cache (scripts/corpus --zoo)."""
    export_zoo = load("corpora/zoo/export.py", "zoo_export")
    cached = list(export_zoo.cached_cases())
    if not cached:
        print("zoo: nothing exported yet (scripts/corpus --zoo); skipped")
    for spec, variant, path, doc in cached:
        where = f"zoo/{spec.name}/{variant}"
        model = onnx.load(path)
        onnx.checker.check_model(model, full_check=False)
        if variant == "model":  # the truth node lives in the naive head only
            check_case_json(where, doc, model.graph, rep)
        module, inputs = export_zoo.build(spec, variant, seed_inputs=1)
        status = check_run(where, path, model.graph, module, [i.name for i in spec.inputs],
                           inputs, binary, rep)
        print(f"{where}: {status}", flush=True)


def main():
    ap = argparse.ArgumentParser(description="check the corpora (see the module docstring)")
    ap.add_argument("--strict", action="store_true",
                    help="fail when the executor is missing or lacks ops")
    ap.add_argument("--only", default="", help="comma-separated GRIST program ids")
    a = ap.parse_args()
    binary = os.environ.get("NANGUARD_BIN", os.path.join(ROOT, "build", "nanguard"))
    if not os.access(binary, os.X_OK):
        print(f"executor {binary} not found: graph checks only, output comparison skipped")
        binary = None
    rep = Report()
    rep.strict = a.strict
    torch.set_num_threads(1)  # the CI machine is shared; the models are small
    check_grist(binary, rep, set(filter(None, a.only.split(","))))
    if not a.only:
        check_zoo(binary, rep)
    print(f"executor comparisons: {rep.compared} models agree with PyTorch "
          f"(max relative difference {rep.max_rel:.3g})")
    for what, n in sorted(rep.skipped.items()):
        print(f"skipped: {what}: {n}")
    if binary is None and a.strict:
        rep.fail("executor", "missing")
    print(f"{len(rep.failures)} failure(s)")
    sys.exit(1 if rep.failures else 0)


if __name__ == "__main__":
    main()
