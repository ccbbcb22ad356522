"""Every benchmark runs in its smoke mode (`--quick`: tiny sizes, no figures to compare), so
a change that breaks one fails CI instead of rotting until the next measurement."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from archive_pipeline_tests.helpers import REPO

BENCHMARKS = sorted(p.stem for p in (REPO / "benchmarks").glob("*.py") if p.stem != "common")
# run by a test beside what they measure (the demo warehouse, the Dagster instance)
ELSEWHERE = {
    "operations": "ops/test_runner.py",
    "search_service": "search/test_search_service.py",
    "search_quality": "demo/test_demo.py",
    "retrieval_quality": "demo/test_demo.py",
}


def test_every_benchmark_has_a_quick_mode_that_a_test_runs():
    for name in BENCHMARKS:
        assert "--quick" in (REPO / "benchmarks" / f"{name}.py").read_text(), name
    for name, test in ELSEWHERE.items():
        text = (REPO / "archive_pipeline_tests" / test).read_text()
        assert f"benchmarks/{name}.py" in text and "--quick" in text, (name, test)


def run_quick(name: str, *args: str, timeout: int = 1200) -> dict:
    """`benchmarks/<name>.py --quick <args>`: its closing JSON line, once it succeeded."""
    out = subprocess.run(
        [sys.executable, f"benchmarks/{name}.py", "--quick", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.timeout(1500)  # a hang guard: `make test` runs another lane beside these
@pytest.mark.parametrize("name", [name for name in BENCHMARKS if name not in ELSEWHERE])
def test_the_benchmark_runs_in_its_quick_mode(name, shared_media):
    figures = run_quick(name)
    assert figures["benchmark"].startswith(name), figures
