"""The slowest tests of one or more pytest JUnit files (`make test`'s lanes), and each file's
total: `python scripts/slowest_tests.py lane1.xml lane2.xml [--top 25]`."""

from __future__ import annotations

import argparse
import xml.etree.ElementTree as ET
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("junit", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    rows, totals = [], {}
    for path in args.junit:
        cases = list(ET.parse(path).iter("testcase"))
        totals[path.stem] = (len(cases), sum(float(c.get("time", 0)) for c in cases))
        rows += [
            (float(c.get("time", 0)), path.stem, f"{c.get('classname')}::{c.get('name')}")
            for c in cases
        ]
    print(f"--- {args.top} slowest tests (seconds with setup and teardown, lane)")
    for seconds, lane, name in sorted(rows, reverse=True)[: args.top]:
        print(f"{seconds:8.1f}  {lane:<6} {name}")
    for lane, (n, seconds) in totals.items():
        print(f"{lane}: {n} tests, {seconds:.0f} s")


if __name__ == "__main__":
    main()
