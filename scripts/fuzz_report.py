"""Tables for results/fuzz.md from fuzz-nightly runs.

    /usr/bin/python3 scripts/fuzz_report.py --custom DIR [--plain DIR] [--twins DIR] [--replay]

DIR: the --out folder of a scripts/fuzz-nightly run (its summary.json). Prints, per
GRIST program, the custom run's exec/s, `nanguard trigger --strategy random`'s runs/s,
and for each mode the defects found within the budget with the seconds and executions
it took; then the totals and the twins' failures. --replay replays every reproducer
of the custom run with `nanguard replay` and counts those that reproduce.
"""
import argparse
import json
import os
import statistics
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rows_of(d):
    return {r["key"]: r for r in json.load(open(os.path.join(d, "summary.json")))["rows"]} if d else {}


def found_cell(row, mode):
    m = row.get(mode) if row else None
    if not m:
        return "-"
    hits = {}
    for c in m["crashes"]:
        hits.setdefault(c["node"], c)
    cells = []
    for d in row["defects_full"]:
        c = hits.get(d["node"])
        cells.append(f"{d['id']}: {c['seconds']:g} s / {c.get('execs', '?')}" if c else f"{d['id']}: no")
    return "; ".join(cells)


def elements_of(row):
    """Input and free-weight elements one fuzz input decodes into (the fuzz config's slots)."""
    out = (row.get("custom") or {}).get("out")
    path = os.path.join(out, "config", "config.json") if out else ""
    if not os.path.exists(path):
        return None
    total = 0
    for slot in json.load(open(path))["slots"]:
        n = 1
        for d in slot["shape"]:
            n *= d
        total += n
    return total


SMALL = 1000  # elements a run: the programs the 10,000 exec/s target is about


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--custom", required=True)
    ap.add_argument("--plain")
    ap.add_argument("--twins")
    ap.add_argument("--replay", action="store_true")
    a = ap.parse_args()
    custom, plain, twins = rows_of(a.custom), rows_of(a.plain), rows_of(a.twins)
    lines = ["| program | model bytes | elements a run | custom exec/s | random runs/s | python runs/s "
             "| custom: found (s / execs) | plain: found (s / execs) |", "|---|---:|---:|---:|---:|---:|---|---|"]
    rates, rand, py, n_def, f_c, f_p = [], [], [], 0, 0, 0
    small = {"fuzz": [], "random": [], "python": []}
    for key, r in custom.items():
        if r["kind"] != "grist":
            continue
        prog = key.split("-")[1]
        case = json.load(open(os.path.join(ROOT, "corpora", "grist", prog, "case.json")))
        r["defects_full"] = case["defects"]
        p = plain.get(key)
        if p:
            p["defects_full"] = case["defects"]
        n_def += len(case["defects"])
        f_c += len(r["custom"]["found"])
        f_p += len(p["plain"]["found"]) if p else 0
        rate = r["custom"]["execs_per_s"] or 0
        rates.append(rate)
        rr = (r.get("random") or {}).get("runs_per_s")
        if rr:
            rand.append(rr)
        pr = (r.get("python") or {}).get("runs_per_s")
        if pr:
            py.append(pr)
        size = os.path.getsize(os.path.join(ROOT, r["model"]))
        n = elements_of(r)
        if n is not None and n <= SMALL:
            small["fuzz"].append(rate)
            small["random"] += [rr] if rr else []
            small["python"] += [pr] if pr else []
        cells = f"{n:,}" if n is not None else "-"
        lines.append(f"| {prog} | {size:,} | {cells} | {rate:,.0f} | {rr or '-'} | {pr or '-'} "
                     f"| {found_cell(r, 'custom')} | {found_cell(p, 'plain')} |")
    med = lambda v: statistics.median(v) if v else 0  # noqa: E731
    print(f"custom: {f_c} of {n_def} defects; plain: {f_p} of {n_def}; median exec/s {med(rates):,.0f}; "
          f"median random runs/s {med(rand):,.0f}; median python runs/s {med(py):,.0f}")
    print(f"programs of at most {SMALL:,} elements a run: {len(small['fuzz'])}; median exec/s {med(small['fuzz']):,.0f}, "
          f"random runs/s {med(small['random']):,.0f}, python runs/s {med(small['python']):,.0f}\n")
    print("\n".join(lines))
    if twins:
        bad = [(k, [c["node"] + " " + c["hazard"] for c in r["custom"]["crashes"]]) for k, r in twins.items()
               if r["custom"]["crashes"]]
        rates = [r["custom"]["execs_per_s"] for r in twins.values() if r["custom"]["execs_per_s"]]
        print(f"\ntwins: {len(bad)} of {len(twins)} with a failure {bad}; median exec/s {statistics.median(rates):,.0f}")
    if a.replay:
        ok = total = 0
        for r in custom.values():
            out = r["custom"].get("out")
            for c in r["custom"]["crashes"]:
                if not c.get("reproducer"):
                    continue
                total += 1
                p = subprocess.run([os.path.join(ROOT, "build-fuzz", "nanguard"), "replay",
                                    os.path.join(out, c["reproducer"])], capture_output=True)
                ok += p.returncode == 0
        print(f"\nreproducers: {ok} of {total} replay (nanguard replay exit 0)")


if __name__ == "__main__":
    main()
