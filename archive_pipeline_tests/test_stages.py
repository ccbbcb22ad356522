"""Stage modules stay light: Ray workers import them without Dagster or LanceDB, and models
load in setup(), not at import."""

import subprocess
import sys


def test_stage_modules_do_not_import_dagster_or_lancedb():
    modules = ["catalog", "speech", "shots", "keyframes", "ocr", "embeddings"]
    code = (
        "import sys, archive_pipeline.core.compute;"
        + "".join(f"import archive_pipeline.stages.{m};" for m in modules)
        + "print(sorted(m for m in ('dagster', 'lancedb', 'lance', 'ray', 'torch', 'rapidocr',"
        " 'open_clip', 'sentence_transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
