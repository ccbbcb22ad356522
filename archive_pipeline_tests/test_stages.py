"""Stage modules stay light: Ray workers import them without Dagster or LanceDB."""

import subprocess
import sys


def test_stage_modules_do_not_import_dagster_or_lancedb():
    code = (
        "import sys, archive_pipeline.stages.catalog, archive_pipeline.core.compute;"
        "print(sorted(m for m in ('dagster', 'lancedb', 'lance', 'ray') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
