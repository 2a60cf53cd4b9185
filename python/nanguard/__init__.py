"""nanguard for PyTorch users: check a torch.nn.Module for NaN/INF.

    import nanguard
    report = nanguard.check(model, (x,), ranges={"x": (-10, 10)})
    for f in report.findings:
        print(f["node"], f["hazard"], f["status"], f["module"], f["witness"])
    nanguard.assert_finite(model, (x,), ranges={"x": (-10, 10)})  # in a pytest

The module is exported with torch.onnx.export into a temporary folder (input names
from forward()'s parameters) and `nanguard check` runs on it; the witnesses come back
as torch tensors. The nanguard binary is $NANGUARD_BIN, else the checkout's
build/nanguard, else `nanguard` on PATH.
"""
import inspect
import json
import os
import shutil
import subprocess
import tempfile

__all__ = ["check", "assert_finite", "Report", "NanguardError", "NonFiniteError"]


class NanguardError(RuntimeError):
    """nanguard could not run (bad input, export failure); the message says why."""


class NonFiniteError(AssertionError):
    """The module may produce NaN/INF; `report` holds the findings."""

    def __init__(self, report):
        self.report = report
        lines = [f"{f['node']} ({f['op']}) {f['hazard']}: {f['status']}" for f in report.findings]
        super().__init__("nanguard: the module can produce NaN/INF:\n  " + "\n  ".join(lines))


class Report:
    """`nanguard check`'s report.json, with each finding's witness as torch tensors."""

    def __init__(self, data, findings, out_dir):
        self.data = data
        self.findings = findings
        self.out_dir = out_dir  # None when the reports were in a temporary folder
        self.proved = bool(data.get("proved"))

    def __repr__(self):
        counts = ", ".join(f"{v} {k}" for k, v in self.data.get("counts", {}).items())
        return f"<nanguard.Report proved={self.proved} findings={len(self.findings)} ({counts})>"


def _binary():
    env = os.environ.get("NANGUARD_BIN")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    local = os.path.join(here, "..", "..", "build", "nanguard")
    if os.path.exists(local):
        return os.path.normpath(local)
    found = shutil.which("nanguard")
    if not found:
        raise NanguardError("no nanguard binary: build it (scripts/setup) or set NANGUARD_BIN")
    return found


def _input_names(module, n):
    params = [p for p in inspect.signature(module.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    names = [p.name for p in params[:n]]
    return names + [f"input_{i}" for i in range(len(names), n)]


def _module_path(node):
    """'/encoder/layer1/Log' -> 'encoder.layer1' (torch.onnx names nodes by module)."""
    parts = [p for p in node.split("/") if p]
    return ".".join(parts[:-1])


def _read_witness(reproducer_dir):
    import onnx
    from onnx import numpy_helper
    import torch

    model = onnx.load(os.path.join(reproducer_dir, "model.onnx"), load_external_data=False)
    weights = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in weights]
    data = os.path.join(reproducer_dir, "test_data_set_0")
    witness = {}
    for k, name in enumerate(names):
        path = os.path.join(data, f"input_{k}.pb")
        if os.path.exists(path):
            t = onnx.TensorProto()
            with open(path, "rb") as f:
                t.ParseFromString(f.read())
            witness[name] = torch.from_numpy(numpy_helper.to_array(t).copy())
    return witness


def _export(module, inputs, path, opset):
    import torch

    names = _input_names(module, len(inputs))
    was_training = module.training
    module.eval()
    try:
        torch.onnx.export(module, tuple(inputs), path, input_names=names, opset_version=opset)
    except Exception as e:  # torch's own message names the op it cannot export
        raise NanguardError(f"torch.onnx.export failed: {e}") from e
    finally:
        module.train(was_training)
    return names


def check(module, example_inputs, ranges=None, weights="fixed", budget=10, out=None, opset=17, extra_args=()):
    """Exports `module` with `example_inputs` and runs `nanguard check` on it.

    ranges: {input name: (lo, hi)}; weights: "fixed", "free" or "free=LO,HI";
    budget: search seconds per finding; out: keep report.json, report.html,
    report.sarif, reproducers/ and fixed.onnx in this folder.
    Returns a Report; raises NanguardError when nanguard cannot run.
    """
    import torch

    inputs = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    with tempfile.TemporaryDirectory(prefix="nanguard-") as tmp:
        model = os.path.join(tmp, "model.onnx")
        names = _export(module, inputs, model, opset)
        for name in (ranges or {}):
            if name not in names:
                raise NanguardError(f"ranges: '{name}' is not an input of forward() (inputs: {', '.join(names)})")
        report_dir = out or os.path.join(tmp, "report")
        cmd = [_binary(), "check", model, "--weights", weights, "--budget", str(budget), "--out", report_dir,
               "--format", "json", "--quiet", *extra_args]
        for name, (lo, hi) in (ranges or {}).items():
            cmd += ["--range", f"{name}={float(lo)!r},{float(hi)!r}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode not in (0, 1):
            raise NanguardError(proc.stderr.strip() or f"nanguard check exited {proc.returncode}")
        with open(os.path.join(report_dir, "report.json")) as f:
            data = json.load(f)
        findings = []
        for f in data["findings"]:
            d = dict(f)
            d["module"] = _module_path(f["node"])
            w = f.get("witness") or {}
            rep = w.get("reproducer")
            d["witness"] = _read_witness(os.path.join(report_dir, rep)) if rep else None
            findings.append(d)
        return Report(data, findings, out)


def assert_finite(module, example_inputs, **kwargs):
    """Raises NonFiniteError (an AssertionError) unless nanguard proves `module` free
    of NaN/INF for inputs in the ranges given."""
    report = check(module, example_inputs, **kwargs)
    if not report.proved:
        raise NonFiniteError(report)
    return report
