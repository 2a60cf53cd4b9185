"""Compares nanguard's executor with PyTorch on exported real architectures.

Each model is exported to ONNX (opset 13/14, fixed seed), fed the same random input
in both runtimes, and compared output by output: max |a-b| / max(|b|, 1e-6 * max|b|).
"""
import argparse
import os
import subprocess
import sys

import numpy as np
import onnx
import torch
from onnx import numpy_helper

OUT = os.path.join("build", "compare")


def resnet18():
    import torchvision
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval(), torch.rand(1, 3, 224, 224)


def transformer_encoder():
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(d_model=256, nhead=8, dim_feedforward=1024,
                                             dropout=0.0, batch_first=True)
    # The fused fast path is not exportable; the plain path is what runs in training.
    model = torch.nn.TransformerEncoder(layer, num_layers=4, enable_nested_tensor=False).eval()
    return model, torch.randn(1, 16, 256)


MODELS = {"resnet18": resnet18, "transformer_encoder": transformer_encoder}


def export(name, model, x):
    path = os.path.join(OUT, name + ".onnx")
    torch.onnx.export(model, (x,), path, input_names=["x"], output_names=["y"],
                      opset_version=14, do_constant_folding=True)
    onnx.checker.check_model(path)
    return path


def compare(name, nanguard):
    model, x = MODELS[name]()
    with torch.no_grad():
        want = model(x).numpy()
    path = export(name, model, x)
    inp = os.path.join(OUT, name + "_x.pb")
    with open(inp, "wb") as f:
        f.write(numpy_helper.from_array(x.numpy(), "x").SerializeToString())
    outdir = os.path.join(OUT, name + "_out")
    proc = subprocess.run([nanguard, "run", path, "--input", "x=" + inp, "--save-outputs", outdir],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"{name}: nanguard exited {proc.returncode}: {proc.stderr.strip()}")
        return None
    got = numpy_helper.to_array(onnx.load_tensor(os.path.join(outdir, "output_0.pb")))
    if got.shape != want.shape:
        print(f"{name}: shape {got.shape} != PyTorch {want.shape}")
        return None
    scale = max(float(np.abs(want).max()), 1e-30)
    rel = float(np.abs(got - want).max()) / scale
    print(f"{name}: output {list(want.shape)}, max |diff| {np.abs(got - want).max():.3g}, "
          f"max relative difference {rel:.3g} (relative to max |output| {scale:.3g})")
    return rel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nanguard", default=os.path.join("build", "nanguard"))
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("models", nargs="*", default=list(MODELS))
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    ok = True
    for name in args.models:
        rel = compare(name, args.nanguard)
        ok &= rel is not None and rel <= args.tolerance
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
