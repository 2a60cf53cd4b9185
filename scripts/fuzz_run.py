"""Fuzzes one model with the fuzz_model target (the engine of scripts/fuzz).

    /usr/bin/python3 scripts/fuzz_run.py MODEL [--range NAME=LO,HI]... [--weights W] [--dim NAME=N]...
        [--budget S] [--jobs N] [--out DIR] [--baseline FILE] [--plain] [--seed N] [--no-build]
        [--until NODE]... [--prune]

Writes the fuzz-config folder (OUT/config), then runs libFuzzer for the budget on
OUT/corpus (kept between runs) and the config's seeds. A failure (NaN/INF starting at
a node outside the baseline) makes fuzz_model write OUT/reproducers/<node>-<hazard>
and abort; the fuzzer is restarted for the time left and passes over known failures,
so each (node, hazard) is reported once. With --jobs N > 1, libFuzzer's fork mode runs
N processes and carries on past failures. Then OUT/summary.json ({execs, execs_per_s,
crashes: [{node, op, hazard, reproducer, seconds}]}) and OUT/fuzz.sarif. Exit 1 when a
new failure was found, 0 when none, 2 on errors.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("NANGUARD_FUZZ_BUILD", os.path.join(ROOT, "build-fuzz"))
TARGETS = ["nanguard_cli", "fuzz_model", "fuzz_loader", "fuzz_soundness"]
FAILURE = re.compile(r"nanguard-fuzz: failure node=(\S*) op=(\S*) hazard=(\S*) kind=(\S*) reproducer=(\S*)")
EXECS = re.compile(r"stat::number_of_executed_units:\s*(\d+)")
ABORT_EXECS = re.compile(r"nanguard-fuzz: execs=(\d+)")


class FuzzError(Exception):
    pass


def ensure_build(no_build):
    """Configures build-fuzz/ like scripts/setup (clang, libFuzzer) and builds the targets."""
    if not no_build:
        if not os.path.exists(os.path.join(BUILD, "build.ninja")):
            cfg = ["cmake", "-S", ROOT, "-B", BUILD, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                   "-DCMAKE_C_COMPILER=clang-14", "-DCMAKE_CXX_COMPILER=clang++-14", "-DNANGUARD_FUZZ=ON",
                   "-DNANGUARD_BUILD_TESTS=OFF", "-DNANGUARD_BUILD_BENCH=OFF"]
            if subprocess.run(cfg, stdout=subprocess.DEVNULL).returncode:
                raise FuzzError("cannot configure build-fuzz/ (clang-14 and libclang-rt-14-dev installed?)")
        jobs = str(os.cpu_count() or 2)
        if subprocess.run(["ninja", "-C", BUILD, "-j", jobs] + TARGETS, stdout=subprocess.DEVNULL).returncode:
            raise FuzzError("building the fuzz targets in build-fuzz/ failed")
    for t in ("nanguard", "fuzz_model"):
        if not os.path.exists(os.path.join(BUILD, t)):
            raise FuzzError(f"{BUILD}/{t} is missing (run without --no-build)")


def write_config(a, out):
    cmd = [os.path.join(BUILD, "nanguard"), "fuzz-config", a.model, "--out", os.path.join(out, "config"),
           "--weights", a.weights]
    for r in a.range:
        cmd += ["--range", r]
    for d in a.dim:
        cmd += ["--dim", d]
    if a.baseline:
        cmd += ["--baseline", a.baseline]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        raise FuzzError(p.stderr.strip() or "fuzz-config failed")
    return json.load(open(os.path.join(out, "config", "config.json")))


def libfuzzer_args(a, out, config, seconds):
    cdir = os.path.join(out, "config")
    args = [os.path.join(BUILD, "fuzz_model"), os.path.join(out, "corpus"), os.path.join(cdir, "seeds"),
            f"-dict={os.path.join(cdir, 'model.dict')}", f"-max_len={max(config['bytes'], 16)}",
            f"-max_total_time={max(int(seconds + 0.999), 1)}", "-print_final_stats=1", "-timeout=20",
            "-rss_limit_mb=6144", f"-artifact_prefix={os.path.join(out, 'crashes')}/", f"-seed={a.seed}",
            "-reload=0", "-len_control=0"]
    if a.jobs > 1:
        args += [f"-fork={a.jobs}", "-ignore_crashes=1"]
    return args


def fuzz(a, out, config):
    """Runs (and restarts) the fuzzer for the budget; returns (execs, seconds, failures)."""
    env = dict(os.environ, NANGUARD_FUZZ_CONFIG=os.path.join(out, "config"),
               NANGUARD_FUZZ_OUT=os.path.join(out, "reproducers"), NANGUARD_FUZZ_PLAIN="1" if a.plain else "0")
    start, execs, failures = time.time(), 0, []
    log = open(os.path.join(out, "log.txt"), "w")
    while True:
        left = a.budget - (time.time() - start)
        if left < 1:
            break
        t0 = time.time()
        p = subprocess.run(libfuzzer_args(a, out, config, left), env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, errors="replace")
        log.write(p.stderr)
        runs = [int(m) for m in EXECS.findall(p.stderr)] or [int(m) for m in ABORT_EXECS.findall(p.stderr)]
        before = execs
        execs += sum(runs) if a.jobs > 1 else (runs[-1] if runs else 0)
        found = FAILURE.findall(p.stderr)
        for node, op, hazard, kind, repro in found:
            failures.append({"node": node, "op": op, "hazard": hazard, "kind": kind,
                             "reproducer": os.path.relpath(repro, out) if repro else None,
                             "seconds": round(time.time() - start, 2), "execs": execs if a.jobs == 1 else None,
                             "execs_before": before})
        if p.returncode == 0 or a.jobs > 1:
            break
        if a.until and set(a.until) <= {f["node"] for f in failures}:
            break  # every node asked for has failed
        if not found:  # the target itself crashed: keep the input, report it, stop
            failures.append({"node": "", "op": "", "hazard": "crash", "kind": "crash", "reproducer": None,
                             "seconds": round(time.time() - start, 2)})
            if time.time() - t0 < 2 and not runs:
                raise FuzzError(f"fuzz_model failed to start: {p.stderr.strip().splitlines()[-1:]}")
            break
    return execs, time.time() - start, failures


def prune(a, out, config):
    """Keeps the inputs that still add coverage (libFuzzer's merge into a fresh folder)."""
    corpus, merged = os.path.join(out, "corpus"), os.path.join(out, "corpus.merged")
    shutil.rmtree(merged, ignore_errors=True)
    os.makedirs(merged)
    env = dict(os.environ, NANGUARD_FUZZ_CONFIG=os.path.join(out, "config"),
               NANGUARD_FUZZ_OUT=os.path.join(out, "reproducers"))
    p = subprocess.run([os.path.join(BUILD, "fuzz_model"), "-merge=1", f"-max_len={max(config['bytes'], 16)}",
                        merged, corpus], env=env, capture_output=True)
    if p.returncode == 0:
        shutil.rmtree(corpus)
        os.rename(merged, corpus)


def sarif(model, failures):
    rules = sorted({f["hazard"] for f in failures})
    results = [{"ruleId": f["hazard"], "level": "error",
                "message": {"text": f"{f['op']} node '{f['node']}' produced NaN/INF from in-range inputs "
                                    f"(fuzzing, after {f['seconds']} s); reproducer: {f['reproducer']}"},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": os.path.relpath(model, ROOT)}},
                               "logicalLocations": [{"name": f["node"], "kind": "function"}]}],
                "properties": {"reproducer": f["reproducer"], "kind": f["kind"]}} for f in failures]
    return {"version": "2.1.0", "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "runs": [{"tool": {"driver": {"name": "nanguard-fuzz", "informationUri": "https://github.com/",
                                          "rules": [{"id": r, "shortDescription": {"text": r}} for r in rules]}},
                      "results": results}]}


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--range", action="append", default=[])
    ap.add_argument("--dim", action="append", default=[])
    ap.add_argument("--weights", default="fixed")
    ap.add_argument("--budget", type=float, default=60)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out")
    ap.add_argument("--baseline")
    ap.add_argument("--plain", action="store_true", help="plain byte mutation (no custom mutator)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--until", action="append", default=[], metavar="NODE",
                    help="stop once each of these nodes has failed (measurements)")
    ap.add_argument("--prune", action="store_true", help="minimise the kept corpus afterwards (-merge=1)")
    a = ap.parse_args(argv)
    if a.budget <= 0 or a.jobs < 1:
        ap.error("--budget must be > 0 and --jobs >= 1")
    return a


def main(argv=None):
    a = parse_args(argv)
    if not os.path.isfile(a.model):
        print(f"fuzz: {a.model}: no such model", file=sys.stderr)
        return 2
    stem = os.path.splitext(os.path.basename(a.model))[0]
    # Default: inside the (ignored) fuzz build folder, one folder per model.
    out = a.out or os.path.join(BUILD, "fuzz-out", os.path.basename(os.path.dirname(os.path.abspath(a.model))) + "-" + stem)
    try:
        ensure_build(a.no_build)
        for d in ("corpus", "crashes"):
            os.makedirs(os.path.join(out, d), exist_ok=True)
        shutil.rmtree(os.path.join(out, "reproducers"), ignore_errors=True)  # this run's failures only
        os.makedirs(os.path.join(out, "reproducers"))
        config = write_config(a, out)
        execs, seconds, failures = fuzz(a, out, config)
    except FuzzError as e:
        print(f"fuzz: {e}", file=sys.stderr)
        return 2
    if a.prune:
        prune(a, out, config)
    summary = {"model": a.model, "budget_s": a.budget, "seconds": round(seconds, 2), "jobs": a.jobs,
               "mutator": "plain" if a.plain else "custom", "execs": execs,
               "execs_per_s": round(execs / seconds, 1) if seconds > 0 else 0, "crashes": failures}
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(out, "fuzz.sarif"), "w") as f:
        json.dump(sarif(a.model, failures), f, indent=1)
    print(f"fuzz: {a.model}: {execs} execs in {seconds:.1f} s ({summary['execs_per_s']}/s), "
          f"{len(failures)} new failures -> {out}/summary.json")
    for f in failures:
        print(f"  {f['node']} ({f['op']}) {f['hazard']} after {f['seconds']} s: {f['reproducer']}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
