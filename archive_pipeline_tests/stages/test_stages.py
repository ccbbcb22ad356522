"""Stage modules (and core's embedders) stay light: Ray workers import them without Dagster or
LanceDB, and models load in setup(), not at import."""

import subprocess
import sys

from archive_pipeline_tests.helpers import REPO

LOADS_ITS_LIBRARY = {
    "pyannote_offline",  # imports pyannote.audio on purpose: loaded by DiarizeStage.setup() only
    "derived",  # diarised_segments from committed tables: runs in the Dagster process, on Lance
}


def test_stage_modules_do_not_import_dagster_or_lancedb():
    modules = sorted(
        p.stem
        for p in (REPO / "archive_pipeline/stages").glob("*.py")
        if p.stem != "__init__" and p.stem not in LOADS_ITS_LIBRARY
    )
    assert {"transcription", "diarisation", "shot_boundaries", "partition"} <= set(modules)
    code = (
        "import sys, archive_pipeline.core.compute, archive_pipeline.core.embedders;"
        + "".join(f"import archive_pipeline.stages.{m};" for m in modules)
        + "print(sorted(m for m in ('dagster', 'lancedb', 'lance', 'ray', 'torch', 'rapidocr',"
        " 'open_clip', 'sentence_transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
