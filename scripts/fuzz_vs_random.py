"""Of the GRIST defects that plain random sampling misses, how many the fuzzer finds.

    /usr/bin/python3 scripts/fuzz_vs_random.py [--random results/random-trigger-plain.md]
                                               [--fuzz results/fuzz.md]

Reads the per-defect table of `corpus_trigger.py --plain` (column `fired`) and the
per-program table of `fuzz-nightly` (columns `custom: found` and `plain: found`, each a
`;`-separated list of `<defect>: <s> s / <execs>`), and prints, for the defects random
sampling missed: how many were fuzzed at all (the fuzz run covers the models under
1 MB), and how many each mutator found, with the lists.
"""
import argparse
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def table_rows(path, first_header):
    rows, header = [], None
    for line in open(path):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None and cells and cells[0] == first_header:
            header = cells
        elif header and line.startswith("|") and not set(line.strip()) <= set("|-: "):
            rows.append(dict(zip(header, cells)))
        elif header and not line.startswith("|"):
            if rows:
                break
    return rows


def found_in(cell):
    return {m.group(1) for m in re.finditer(r"(\w+): [\d.]+ s /", cell or "")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--random", default=os.path.join(ROOT, "results", "random-trigger-plain.md"))
    ap.add_argument("--fuzz", default=os.path.join(ROOT, "results", "fuzz.md"))
    a = ap.parse_args()
    missed = [r["defect"] for r in table_rows(a.random, "defect") if r["fired"].startswith("no")]
    fuzzed, custom, plain = set(), set(), set()
    for r in table_rows(a.fuzz, "program"):
        program = r["program"]
        custom |= found_in(r.get("custom: found (s / execs)"))
        plain |= found_in(r.get("plain: found (s / execs)"))
        fuzzed |= {d for d in missed if re.fullmatch(re.escape(program) + r"[a-z]?", d)}
    print(f"missed by plain random sampling: {len(missed)}: {', '.join(missed)}")
    print(f"of those, fuzzed (models under 1 MB): {len(fuzzed)}")
    for name, found in (("custom mutator", custom), ("plain byte mutation", plain)):
        hit = [d for d in missed if d in found]
        print(f"found by the fuzzer with the {name} within 60 s: {len(hit)}: {', '.join(hit)}")
    print(f"found by either: {len([d for d in missed if d in custom | plain])}")


if __name__ == "__main__":
    main()
