"""Process-wide settings made on import (core/process.py)."""

import os
import subprocess
import sys

import pytest

PROBE = (
    "from archive_pipeline.core.process import limit_malloc_arenas; print(limit_malloc_arenas())"
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_arenas_are_capped_unless_the_operator_set_malloc_arena_max():
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    run = [sys.executable, "-c", PROBE]
    assert subprocess.run(run, env=env, capture_output=True, text=True).stdout.strip() == "True"
    env["MALLOC_ARENA_MAX"] = "4"
    assert subprocess.run(run, env=env, capture_output=True, text=True).stdout.strip() == "False"


def test_openmp_threads_wait_passively_unless_the_operator_chose():
    """Set on import, before torch loads (OpenMP reads it then), for this process and the Ray
    workers and subprocesses it starts; what spinning costs is measured by
    benchmarks/threads.py."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    probe = "import os, archive_pipeline; print(os.environ['OMP_WAIT_POLICY'])"
    run = [sys.executable, "-c", probe]
    assert subprocess.run(run, env=env, capture_output=True, text=True).stdout.strip() == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    assert subprocess.run(run, env=env, capture_output=True, text=True).stdout.strip() == "ACTIVE"
