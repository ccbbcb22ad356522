"""The slowest tests of one or more pytest JUnit files (`make test`'s lanes), with the CPU
seconds each used (subprocesses included, from the `cpu_s` property conftest.py records), and
each file's totals: `python scripts/slowest_tests.py lane1.xml lane2.xml [--top 25] [--by cpu]`."""

from __future__ import annotations

import argparse
import xml.etree.ElementTree as ET
from pathlib import Path


def cpu_seconds(case: ET.Element) -> float:
    for prop in case.iter("property"):
        if prop.get("name") == "cpu_s":
            return float(prop.get("value", 0))
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("junit", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--by", choices=("wall", "cpu"), default="wall", help="what to sort by")
    args = parser.parse_args()
    rows, totals = [], {}
    for path in args.junit:
        cases = [
            (float(c.get("time", 0)), cpu_seconds(c), f"{c.get('classname')}::{c.get('name')}")
            for c in ET.parse(path).iter("testcase")
        ]
        totals[path.stem] = (len(cases), sum(c[0] for c in cases), sum(c[1] for c in cases))
        rows += [(wall, cpu, path.stem, name) for wall, cpu, name in cases]
    print(f"--- {args.top} slowest tests by {args.by} (wall s, CPU s; setup and teardown in)")
    key = (lambda row: row[0]) if args.by == "wall" else (lambda row: row[1])
    for wall, cpu, lane, name in sorted(rows, key=key, reverse=True)[: args.top]:
        print(f"{wall:8.1f} {cpu:8.1f}  {lane:<6} {name}")
    for lane, (n, wall, cpu) in totals.items():
        print(f"{lane}: {n} tests, {wall:.0f} s, {cpu:.0f} CPU-s")


if __name__ == "__main__":
    main()
