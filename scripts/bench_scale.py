"""Whole-process time and peak memory of `nanguard analyze` on the zoo's large models,
against a baseline build, alternating in one run (this machine is shared and noisy).

    /usr/bin/python3 scripts/bench_scale.py --baseline DIR [--baseline-blas DIR]
        [--nanguard build/nanguard] [--blas DIR] [--models resnet50,vgg16,gpt2_decoder]
        [--reps 5] [--out results/scale.md]

DIR holds a `nanguard` binary and its libnanguard.so (a copy of an older build);
`--blas`/`--baseline-blas` put a BLAS folder first on LD_LIBRARY_PATH (Debian's
/usr/lib/x86_64-linux-gnu/blas is the netlib reference, .../openblas-pthread
OpenBLAS), so a run can also separate the code's gain from the BLAS's. Each model is
the zoo's `model.onnx` (naive head) with the ranges of corpora/zoo/cases.json; the
median of `reps` runs of each side, measured with /usr/bin/time (wall, peak RSS).
"""
import argparse
import json
import os
import statistics
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.path.join(ROOT, "corpora", "zoo")


def ranges(case):
    return [a for name, (lo, hi) in case["inputs"].items() for a in ("--range", f"{name}={lo},{hi}")]


def measure(binary, libdirs, model, args):
    env = dict(os.environ, LD_LIBRARY_PATH=":".join(d for d in libdirs if d))
    p = subprocess.run(["/usr/bin/time", "-f", "%e %M", binary, "analyze", model] + args,
                       capture_output=True, text=True, env=env)
    seconds, kb = p.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(kb) / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", required=True)
    ap.add_argument("--baseline-blas", default="")
    ap.add_argument("--nanguard", default=os.path.join(ROOT, "build", "nanguard"))
    ap.add_argument("--blas", default="")
    ap.add_argument("--models", default="resnet50,vgg16,gpt2_decoder")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "scale.md"))
    a = ap.parse_args()
    cases = json.load(open(os.path.join(ZOO, "cases.json")))
    sides = [("baseline", os.path.join(a.baseline, "nanguard"), [a.baseline_blas, a.baseline]),
             ("nanguard", a.nanguard, [a.blas, os.path.dirname(os.path.abspath(a.nanguard))])]
    rows = []
    for name in a.models.split(","):
        model = os.path.join(ZOO, "cache", name, "model.onnx")
        if not os.path.exists(model):
            print(f"{name}: not exported (scripts/corpus --zoo), skipped")
            continue
        size = os.path.getsize(model) / 2**20
        runs = {s: [] for s, _, _ in sides}
        for _ in range(a.reps):
            for side, binary, libs in sides:
                runs[side].append(measure(binary, libs, model, ranges(cases[name])))
        med = {s: (statistics.median(t for t, _ in r), statistics.median(m for _, m in r)) for s, r in runs.items()}
        rows.append((name, size, med["baseline"], med["nanguard"]))
        print(name, med, flush=True)
    lines = ["# Scale: whole-process analyze time and peak memory against a baseline build", "",
             f"Command: `/usr/bin/python3 scripts/bench_scale.py --reps {a.reps} ...` (this 2-core machine; the two "
             f"sides alternate, medians of {a.reps}). Baseline BLAS: `{a.baseline_blas or 'system'}`; "
             f"nanguard BLAS: `{a.blas or 'system'}`.", "",
             "| model | file MiB | baseline s | nanguard s | ratio | baseline peak MiB | nanguard peak MiB | peak / file |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, size, (bt, bm), (nt, nm) in rows:
        lines.append(f"| {name} | {size:.0f} | {bt:.2f} | {nt:.2f} | {nt / bt:.2f} | {bm:.0f} | {nm:.0f} | {nm / size:.1f} |")
    with open(a.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
