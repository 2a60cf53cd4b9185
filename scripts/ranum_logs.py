"""RANUM's fix figures on GRIST, read from the per-case logs in its public repository
(empirical_study/precond/{input,weight,all}/<id>_debarus.txt), so that results can
compare like with like:

    /usr/bin/python3 scripts/ranum_logs.py RANUM_DIR   # a checkout, or a bare git dir

Each log opens with a JSON summary (`tot_start_points`, `tot_changed_nodes`,
`average_shrinkage`, `maximum_shrinkage`), then the final and the initial bounds of
each start point: `lo <= name <= hi` for a ranged node, `name = value` for a constant.
Per mode, over the cases with a log (the defects RANUM fixed):
- kept_reported: 1 - average_shrinkage, RANUM's own measure; constants count whole;
- kept_ranged: the same mean over the ranged nodes only (constants left out);
- least_kept: 1 - maximum_shrinkage, the share kept of the most narrowed node, which
  does not depend on how many nodes a graph has.
"""
import json
import os
import re
import statistics
import subprocess
import sys

MODES = {"inputs": "input", "weights": "weight", "all": "all"}


def _reader(root):
    base = os.path.join(root, "empirical_study", "precond")
    if os.path.isdir(base):
        return (lambda d: sorted(os.listdir(os.path.join(base, d))),
                lambda d, f: open(os.path.join(base, d, f)).read())
    git = ["git", f"--git-dir={root}"]
    ls = lambda d: [p.split("/")[-1] for p in subprocess.run(
        git + ["ls-tree", "--name-only", "HEAD", f"empirical_study/precond/{d}/"],
        capture_output=True, text=True, check=True).stdout.split()]
    show = lambda d, f: subprocess.run(git + ["show", f"HEAD:empirical_study/precond/{d}/{f}"],
                                       capture_output=True, text=True, check=True).stdout
    return ls, show


def case_figures(text):
    end = text.index("}\n}") + 3
    summary = json.loads(text[:end])["all"]
    initial = text[end:].split("==========initial bounds==========")[-1]
    ranged = len(re.findall(r"<=\s*\S+\s*<=", initial))
    total, shrink = summary["tot_start_points"], summary["average_shrinkage"]
    return {"kept_reported": 1 - shrink,
            "kept_ranged": 1 - shrink * total / ranged if ranged else 1.0,
            "least_kept": 1 - summary["maximum_shrinkage"]}


def ranum_figures(root):
    ls, show = _reader(root)
    out = {}
    for mode, folder in MODES.items():
        cases = {f.split("_")[0]: case_figures(show(folder, f)) for f in ls(folder) if f.endswith(".txt")}
        out[mode] = {"fixed": len(cases)} | {
            k: statistics.mean(c[k] for c in cases.values()) for k in ("kept_reported", "kept_ranged", "least_kept")}
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: ranum_logs.py RANUM_DIR")
    print(json.dumps(ranum_figures(sys.argv[1]), indent=1))
