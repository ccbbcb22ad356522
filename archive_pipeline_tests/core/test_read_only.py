"""Read-only commands (search, export, summary) on a missing or empty warehouse: a clear
message naming the warehouse and what to run first, and nothing created."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from archive_pipeline.core.warehouse import Warehouse, WarehouseMissingError
from archive_pipeline_tests.helpers import REPO

BIN = Path(sys.executable).parent
COMMANDS = {
    "search": [str(BIN / "archive-search"), "harbour", "--mode", "text"],
    "export": [str(BIN / "archive-pipeline"), "export", "jfk.flac", "--format", "srt"],
    "summary": [str(BIN / "archive-pipeline"), "summary"],
}


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


@pytest.mark.slow
@pytest.mark.parametrize("state", ["missing", "empty"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_read_only_command_says_what_to_run_and_creates_nothing(tmp_path, command, state):
    home, warehouse = tmp_path / "home", tmp_path / "wh"
    if state == "empty":
        warehouse.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARCHIVE_", "DAGSTER_"))}
    env |= {"ARCHIVE_HOME": str(home), "ARCHIVE_WAREHOUSE": str(warehouse)}
    before = files_under(tmp_path)
    out = subprocess.run(
        COMMANDS[command], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert str(warehouse) in out.stderr and "archive-pipeline run" in out.stderr, out.stderr
    assert files_under(tmp_path) == before


def test_a_read_only_warehouse_reads_a_table_not_written_yet_as_empty(tmp_path):
    Warehouse(str(tmp_path / "wh")).table("media_catalog")
    wh = Warehouse(str(tmp_path / "wh"), read_only=True).require()
    assert wh.read("speaker_turns").num_rows == 0 and wh.count("failures") == 0
    assert not (tmp_path / "wh/speaker_turns.lance").exists()
    with pytest.raises(WarehouseMissingError, match="no warehouse at"):
        Warehouse(str(tmp_path / "nowhere"), read_only=True).require()
    assert not (tmp_path / "nowhere").exists()


def test_a_table_older_than_the_contract_reads_its_new_columns_as_nulls_without_a_write(tmp_path):
    import lancedb
    import pyarrow as pa

    from archive_pipeline.contract.schemas import TABLES

    contract = TABLES["media_catalog"].schema
    older = pa.schema(list(contract)[:-1])  # before `aliases`
    table = lancedb.connect(str(tmp_path / "wh")).create_table("media_catalog", schema=older)
    version = table.version
    read = Warehouse(str(tmp_path / "wh"), read_only=True).read("media_catalog")
    assert read.schema.names == contract.names and read.num_rows == 0
    assert read.schema.field("aliases").type == contract.field("aliases").type
    assert lancedb.connect(str(tmp_path / "wh")).open_table("media_catalog").version == version
    migrated = Warehouse(str(tmp_path / "wh")).table("media_catalog")  # a writer adds it
    assert migrated.schema.names == contract.names
