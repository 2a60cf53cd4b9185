"""Random triggering of the GRIST defects in PyTorch: a baseline and a corpus sanity check.

    /usr/bin/python3 scripts/corpus_trigger.py [--trials N] [--only 3,11,...]

For each program, N rounds of two strategies draw weights from the case's weight box
(explicit, or DESIGN.md's derived one: stored min/max widened by its own width on each
side) and inputs from its ranges, either uniformly or at random corners of the boxes. A
forward defect fires when its wrapper module sees finite operands and returns NaN/INF;
a gradient defect when the loss's backward pass gives its operand a NaN/INF gradient
while the forward value is finite. The fixed twins get the same draws and must keep
every output and every parameter gradient finite. Prints one line per program and the
totals; exits 1 if a twin failed. Random search is weak by design: a defect it misses
may still be reachable (most need the weights aligned, e.g. a logit gap above 104).
"""
import argparse
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "corpora", "grist"))
from registry import all_cases  # noqa: E402


def weight_boxes(case, model):
    """name -> (lo, hi), or None for fixed weights."""
    w = case.weights
    boxes = {}
    for name, p in model.named_parameters():
        if w["mode"] == "fixed":
            boxes[name] = None
        elif "range" in w:
            boxes[name] = tuple(w["range"])
        else:
            lo, hi = p.min().item(), p.max().item()
            boxes[name] = (lo - (hi - lo), hi + (hi - lo))
    return boxes


def draw(shape, lo, hi, corner, g):
    if corner:
        return torch.where(torch.rand(shape, generator=g) < 0.5,
                           torch.tensor(float(lo)), torch.tensor(float(hi)))
    return lo + (hi - lo) * torch.rand(shape, generator=g)


def draw_all(case, model, boxes, corner, g):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if boxes[name] is not None:
                p.copy_(draw(p.shape, *boxes[name], corner, g))
    inputs = []
    for i in case.inputs:
        if i.sample == "int":
            inputs.append(torch.randint(int(i.lo), int(i.hi) + 1, i.shape, generator=g))
        else:
            inputs.append(draw(i.shape, i.lo, i.hi, corner, g))
    return inputs


def finite(t):
    return bool(torch.isfinite(t).all())


def run_defective(case, model, inputs):
    """The ids of the defects that fired on these inputs."""
    fired, hooks = set(), []
    for d in case.defects:
        def hook(module, args, out, d=d):
            operands = [a for a in args if torch.is_tensor(a) and a.is_floating_point()]
            if not all(finite(a) for a in operands):
                return
            if d.kind == "forward" and not finite(out):
                fired.add(d.id)
            elif d.kind == "gradient" and finite(out) and operands[0].requires_grad:
                operands[0].register_hook(lambda g, d=d: fired.add(d.id) if not finite(g) else None)
        hooks.append(model.get_submodule(d.scope).register_forward_hook(hook))
    try:
        outs = model(*inputs)
        if any(d.kind == "gradient" for d in case.defects):
            loss = outs[0] if isinstance(outs, tuple) else outs
            loss.backward()
    finally:
        for h in hooks:
            h.remove()
    return fired


def twin_fails(model, inputs):
    """None if every output and every gradient (weights, float inputs) is finite."""
    model.zero_grad()
    for x in inputs:
        if x.is_floating_point():
            x.requires_grad_(True)
    outs = model(*inputs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    if not all(finite(o) for o in outs):
        return "output"
    sum(o.sum() for o in outs).backward()
    grads = [(n, p.grad) for n, p in model.named_parameters()] + \
        [(f"input {k}", x.grad) for k, x in enumerate(inputs)]
    for name, grad in grads:
        if grad is not None and not finite(grad):
            return f"gradient of {name}"
    return None


def plain_random(a, only):
    """The baseline the issue asks for: plain uniform draws of inputs and weights (no
    corners), up to --samples per program with seed 0, stopping a program after
    --budget seconds; records the first sample that fires each defect."""
    import time
    rows, fired_total, total = [], 0, 0
    for case in all_cases():
        if only and case.program not in only:
            continue
        torch.manual_seed(int(case.program))
        model = case.build(False).eval()
        boxes = weight_boxes(case, model)
        g = torch.Generator().manual_seed(0)
        first, n, start = {}, 0, time.time()
        while n < a.samples and time.time() - start < a.budget:
            inputs = draw_all(case, model, boxes, False, g)
            for d in run_defective(case, model, inputs):
                first.setdefault(d, n)
            n += 1
            if len(first) == len(case.defects):
                break
        for d in case.defects:
            total += 1
            fired_total += d.id in first
            where = f"yes, sample {first[d.id]}" if d.id in first else "no"
            rows.append(f"| {d.id} | {d.op} | {d.kind} | {where} | {n} |")
        print(rows[-1], flush=True)
    summary = f"{fired_total} of {total} defects fired by plain random sampling"
    out = os.path.join(ROOT, "results", "random-trigger-plain.md")
    with open(out, "w") as f:
        f.write("# Plain random sampling on the GRIST defects\n\n"
                f"`/usr/bin/python3 scripts/corpus_trigger.py --plain --samples {a.samples} --budget {a.budget:g}`: "
                "uniform draws of every input and free weight inside the case's box (seed 0), at most "
                f"{a.samples} per program and {a.budget:g} s (wall clock) per program; a program stops early once all "
                "its defects fired. `samples drawn` says how many draws a program got.\n\n"
                f"**{summary}.**\n\n| defect | op | kind | fired | samples drawn |\n|---|---|---|---|---:|\n")
        f.write("\n".join(rows) + "\n")
    print(summary)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=6, help="rounds of both strategies")
    ap.add_argument("--only", default="", help="comma-separated program ids")
    ap.add_argument("--plain", action="store_true", help="plain uniform sampling baseline (results/random-trigger-plain.md)")
    ap.add_argument("--samples", type=int, default=10000, help="with --plain: draws per program")
    ap.add_argument("--budget", type=float, default=60, help="with --plain: seconds per program at most")
    a = ap.parse_args()
    only = set(filter(None, a.only.split(",")))
    torch.set_num_threads(1)
    if a.plain:
        return plain_random(a, only)
    total = hit = twin_bad = 0
    for case in all_cases():
        if only and case.program not in only:
            continue
        models = []
        for fixed in (False, True):
            torch.manual_seed(int(case.program))
            models.append(case.build(fixed).eval())
        boxes = weight_boxes(case, models[0])
        g = torch.Generator().manual_seed(0)
        fired, problems = {}, []
        for t in range(a.trials):
            for corner in (False, True):
                state = g.get_state()
                inputs = draw_all(case, models[0], boxes, corner, g)
                for d in run_defective(case, models[0], inputs):
                    fired.setdefault(d, f"{'corner' if corner else 'uniform'} #{t}")
                g.set_state(state)  # the twin sees the very same weights and inputs
                problem = twin_fails(models[1], draw_all(case, models[1], boxes, corner, g))
                if problem:
                    problems.append(problem)
        missed = [d.id for d in case.defects if d.id not in fired]
        total += len(case.defects)
        hit += len(fired)
        twin_bad += bool(problems)
        print(f"{case.program}: fired {sorted(fired)}" + (f", missed {missed}" if missed else "")
              + (f"; TWIN FAILED ({problems[0]})" if problems else "; twin finite"), flush=True)
    print(f"random trigger: {hit}/{total} defects fired; {twin_bad} twin(s) produced NaN/INF")
    sys.exit(1 if twin_bad else 0)


if __name__ == "__main__":
    main()
