"""nanguard's analysis against RANUM's (its public implementation, from a local copy of
its repository that is never committed) on the same models, alternating in one run:
wall time of the whole process and its peak resident memory, medians over the
repetitions, and the ratio nanguard / RANUM.

    /usr/bin/python3 scripts/bench_vs_ranum.py --ranum DIR [--models resnet50,resnet18,...]
        [--reps 5] [--nanguard build/nanguard] [--out results/vs-ranum.md]

DIR holds RANUM's `interp/` package (`git archive HEAD interp graphparser config.py` of
its repository). Both analyse the zoo model with the `log(softmax)` head
(corpora/zoo/cache/NAME/model.onnx, `scripts/corpus --zoo`) with x in [0, 1]: nanguard
`analyze --range x=0,1` (weights fixed, exact); RANUM `analyze` with x's abstraction
[0, 1] and its own defaults for weights (one interval per weight tensor from its stored
values, widened by their width), as its detection runs. Neither is asked for more than
detection. Findings are counted as each reports them: RANUM reports the ops whose
hazard it checks (Log, Exp, Div, Sqrt, ...), not overflows of convolutions.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs RANUM's detection on one model: our driver, calling its API.
DRIVER = r"""
import sys, io, contextlib
sys.path.insert(0, sys.argv[1])
from interp.interp_module import load_onnx_from_file
from interp.interp_utils import AbstractionInitConfig
with contextlib.redirect_stdout(io.StringIO()):
    m = load_onnx_from_file(sys.argv[2])
    cfg = m.gen_abstraction_heuristics("model")
    cfg["x"] = AbstractionInitConfig(diff=False, lb=0.0, ub=1.0, from_init=False)
    res = m.analyze(cfg, {"average_pool_mode": "coarse"})
print(len(res))
"""


def timed(cmd, ok_codes):
    """(wall seconds, peak RSS in MiB, stdout, error) of one run of `cmd`; error is the
    last line of stderr when its exit code is not in `ok_codes`, else empty."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        code = os.waitstatus_to_exitcode(status)
        lines = err.read().strip().splitlines() or [f"exit {code}"]
        return wall, usage.ru_maxrss / 1024, out.read(), "" if code in ok_codes else lines[-1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranum", required=True, help="a local copy of RANUM's repository (its interp/ package)")
    ap.add_argument("--models", default="resnet50")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--nanguard", default=os.path.join(ROOT, "build", "nanguard"))
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "vs-ranum.md"))
    args = ap.parse_args()
    if not os.path.isdir(os.path.join(args.ranum, "interp")):
        sys.exit(f"bench_vs_ranum: {args.ranum} has no interp/ (RANUM's package)")
    rows = []
    for name in args.models.split(","):
        model = os.path.join(ROOT, "corpora", "zoo", "cache", name, "model.onnx")
        if not os.path.exists(model):
            sys.exit(f"bench_vs_ranum: {model} is missing (scripts/corpus --zoo)")
        ours = [args.nanguard, "analyze", model, "--range", "x=0,1", "--format", "json"]
        theirs = [sys.executable, "-c", DRIVER, args.ranum, model]
        ng, rn = [], []
        for rep in range(args.reps):  # alternating, so both see the same machine
            ng.append(timed(ours, (0, 1)))
            if ng[-1][3]:
                sys.exit(f"bench_vs_ranum: nanguard failed on {model}: {ng[-1][3]}")
            if not rn or not rn[-1][3]:
                rn.append(timed(theirs, (0,)))
            print(name, rep, f"nanguard {ng[-1][0]:.2f} s {ng[-1][1]:.0f} MiB, RANUM {rn[-1][0]:.2f} s {rn[-1][1]:.0f} MiB"
                  + (f" (fails: {rn[-1][3]})" if rn[-1][3] else ""), flush=True)
        findings = len(json.loads(ng[0][2])["findings"])
        failed = rn[-1][3]
        rows.append((name, os.path.getsize(model) / 2**20, statistics.median(x[0] for x in ng),
                     None if failed else statistics.median(x[0] for x in rn), statistics.median(x[1] for x in ng),
                     None if failed else statistics.median(x[1] for x in rn), findings,
                     f"fails: {failed[:90]}" if failed else rn[0][2].strip()))
    lines = ["# nanguard against RANUM, in the same run", "",
             f"Command: `/usr/bin/python3 scripts/bench_vs_ranum.py --ranum DIR --models {args.models} --reps {args.reps}` "
             "(this 2-core machine). " + __doc__.split("\n\n")[2].replace("\n", " ").strip(), "",
             "| model | file MiB | nanguard s | RANUM s | ratio | nanguard peak MiB | RANUM peak MiB | peak / file (nanguard) | findings: nanguard, RANUM |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, size, t_ng, t_rn, m_ng, m_rn, f_ng, f_rn in rows:
        rn_t, ratio, rn_m = ("-", "-", "-") if t_rn is None else (f"{t_rn:.2f}", f"{t_ng / t_rn:.2f}", f"{m_rn:.0f}")
        lines.append(f"| {name} | {size:.0f} | {t_ng:.2f} | {rn_t} | {ratio} | {m_ng:.0f} | {rn_m} | "
                     f"{m_ng / size:.1f} | {f_ng}; RANUM: {f_rn.replace('|', '/')} |")
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
