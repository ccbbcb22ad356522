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
