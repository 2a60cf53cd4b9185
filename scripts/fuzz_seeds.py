"""Seed corpora of fuzz_loader and fuzz_soundness, written on demand (not committed).

    /usr/bin/python3 scripts/fuzz_seeds.py loader|soundness OUTDIR [--max N]

loader: the project's small ONNX models (corpora/demo, corpora/fuzz/loader) and
libonnx-testdata's models under 64 KiB (node, simple, pytorch-converted,
pytorch-operator), one file each. soundness: one input per ONNX node test (in the
sorted order fuzz_soundness indexes them), with a symmetric power-of-two interval for
each float input, so that every op of the registry is visited from the start, and
the inputs kept in corpora/fuzz/soundness.
"""
import argparse
import glob
import hashlib
import os
import shutil
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTDATA = "/usr/share/libonnx-testdata/data"


def loader(out, limit):
    models = [os.path.join(ROOT, "corpora", "demo", "model.onnx")]
    models += sorted(glob.glob(os.path.join(ROOT, "corpora", "fuzz", "loader", "*.onnx")))
    for sub in ("node", "simple", "pytorch-converted", "pytorch-operator"):
        models += sorted(glob.glob(os.path.join(TESTDATA, sub, "*", "model.onnx")))
    n = 0
    for m in models:
        if os.path.getsize(m) > 65536 or n >= limit:
            continue
        data = open(m, "rb").read()
        open(os.path.join(out, hashlib.sha1(data).hexdigest()), "wb").write(data)
        n += 1
    return n


def soundness(out, limit):
    tests = sorted(d for d in glob.glob(os.path.join(TESTDATA, "node", "*")) if os.path.exists(os.path.join(d, "model.onnx")))
    n = 0
    for i, _ in enumerate(tests[:limit]):
        # index, seed, then per float input: shape byte 1 + 3 * 41 -> [-2, 2] (see soundness_case.h)
        body = struct.pack("<HI", i, i) + b"".join(struct.pack("<BII", 1 + 3 * 41, 0, 0) for _ in range(4))
        open(os.path.join(out, f"case-{i:04}"), "wb").write(body)
        n += 1
    for f in sorted(glob.glob(os.path.join(ROOT, "corpora", "fuzz", "soundness", "crash-*"))):
        shutil.copy(f, out)  # the open findings, replayed first
        n += 1
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("kind", choices=["loader", "soundness"])
    ap.add_argument("out")
    ap.add_argument("--max", type=int, default=100000)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    n = (loader if a.kind == "loader" else soundness)(a.out, a.max)
    print(f"fuzz_seeds: {n} {a.kind} seeds in {a.out}")


if __name__ == "__main__":
    main()
