"""The Python baseline for fuzzing rates: a GRIST program's own PyTorch module, run
eagerly on random in-range inputs (its stored weights, as the export), for a budget.

    /usr/bin/python3 scripts/python_random.py PROGRAM [--budget S] [--seed N]

Prints one JSON object: runs, seconds (the sampling loop only: module build and
import excluded), runs_per_s, and found: the defects whose wrapper module output held
a NaN/INF while its inputs were finite. This is what a developer's own loop of
`model(torch.rand(...))` achieves; scripts/fuzz-nightly --python S runs it beside
fuzz_model and `nanguard trigger --strategy random` on the same program.
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "corpora", "grist"))


def finite(x):
    import torch
    if isinstance(x, (tuple, list)):
        return all(finite(t) for t in x)
    return not torch.is_tensor(x) or not x.is_floating_point() or bool(torch.isfinite(x).all())


def run(program, budget, seed):
    import torch
    from registry import all_cases, sample_inputs
    torch.set_num_threads(1)  # as fuzz_model: one core per job
    case = next(c for c in all_cases() if c.program == program)
    torch.manual_seed(int(case.program))
    model = case.build(False).eval()
    modules = dict(model.named_modules())
    found = set()

    def watch(defect):
        def hook(_module, args, out):
            if finite(args) and not finite(out):
                found.add(defect.id)
        return hook
    for d in case.defects:
        if d.scope in modules:
            modules[d.scope].register_forward_hook(watch(d))
    runs, start = 0, time.perf_counter()
    with torch.no_grad():
        while time.perf_counter() - start < budget:
            model(*sample_inputs(case, seed + runs))
            runs += 1
    secs = time.perf_counter() - start
    return {"runs": runs, "seconds": round(secs, 2), "runs_per_s": round(runs / secs, 1) if secs else None,
            "found": sorted(found)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("program")
    ap.add_argument("--budget", type=float, default=5)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    print(json.dumps(run(a.program, a.budget, a.seed)))


if __name__ == "__main__":
    main()
