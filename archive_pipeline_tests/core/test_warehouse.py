"""Lance write semantics of DESIGN §4: atomic, concurrent-safe, idempotent, cleaned up."""

import datetime as dt
import multiprocessing
import threading

import pyarrow as pa
import pytest

from archive_pipeline.contract.schemas import FAILURES, TABLES
from archive_pipeline.core.warehouse import SchemaMismatchError, Warehouse, row_id

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def rows(decade: str, n: int, tag: str, stage: str = "media_catalog") -> pa.Table:
    """n failure rows of one decade whose message carries a generation tag."""
    return pa.Table.from_pylist(
        [
            {
                "row_id": row_id(stage, decade, str(i)),
                "decade": decade,
                "stage": stage,
                "uri": f"file:///{decade}/{i}",
                "error_class": "E",
                "message": tag,
                "created_at": NOW,
            }
            for i in range(n)
        ],
        schema=FAILURES,
    )


def scope(decade, stage="media_catalog"):
    return {"decade": decade, "stage": stage}


def test_replace_only_touches_its_scope(tmp_path):
    wh = Warehouse(str(tmp_path))
    wh.replace("failures", rows("1980s", 3, "a"), scope=scope("1980s"))
    wh.replace("failures", rows("1990s", 2, "a"), scope=scope("1990s"))
    wh.replace("failures", rows("1980s", 1, "b"), scope=scope("1980s"))
    wh.replace("failures", rows("1980s", 2, "x", stage="other"), scope=scope("1980s", "other"))
    assert wh.read("failures", scope("1980s")).column("message").to_pylist() == ["b"]
    assert wh.read("failures", scope("1990s")).num_rows == 2
    assert wh.read("failures").num_rows == 5
    wh.replace("failures", rows("1980s", 0, "c"), scope=scope("1980s"))
    assert wh.read("failures", scope("1980s")).num_rows == 0
    assert wh.read("failures").num_rows == 4


def test_identical_rows_commit_nothing(tmp_path):
    wh = Warehouse(str(tmp_path))
    first = wh.replace("failures", rows("1980s", 3, "a"), scope=scope("1980s"))
    again = wh.replace("failures", rows("1980s", 3, "a"), scope=scope("1980s"))
    assert first.committed and not again.committed
    assert again.version == wh.table("failures").version


def test_rows_outside_the_scope_are_refused(tmp_path):
    wh = Warehouse(str(tmp_path))
    with pytest.raises(ValueError, match="contain decade"):
        wh.replace("failures", rows("1990s", 1, "a"), scope=scope("1980s"))
    with pytest.raises(ValueError, match="replaced per"):
        wh.replace("failures", rows("1980s", 1, "a"), scope={"decade": "1980s"})


def test_schema_mismatch_is_a_clear_error(tmp_path):
    wh = Warehouse(str(tmp_path))
    wh.db.create_table("media_catalog", schema=pa.schema([("row_id", pa.string())]))
    with pytest.raises(SchemaMismatchError, match="contract"):
        wh.table("media_catalog")


def test_replace_is_atomic_for_readers(tmp_path):
    """A reader polling during repeated replacements only ever sees one whole generation."""
    wh = Warehouse(str(tmp_path))
    sizes = {f"g{i}": 50 + 37 * (i % 3) for i in range(12)}
    wh.replace("failures", rows("1980s", sizes["g0"], "g0"), scope=scope("1980s"))
    wh.replace("failures", rows("1990s", 5, "other"), scope=scope("1990s"))
    seen, problems, done = set(), [], threading.Event()

    def reader():
        reader_wh = Warehouse(str(tmp_path))
        while not done.is_set():
            got = reader_wh.read("failures", scope("1980s")).column("message").to_pylist()
            tags = set(got)
            if len(tags) != 1 or len(got) != sizes[next(iter(tags))]:
                problems.append((len(got), sorted(tags)[:3]))
            seen.update(tags)

    thread = threading.Thread(target=reader)
    thread.start()
    for tag in list(sizes)[1:]:
        wh.replace("failures", rows("1980s", sizes[tag], tag), scope=scope("1980s"))
    done.set()
    thread.join()
    assert not problems, problems
    assert len(seen) >= 2  # the reader really overlapped the writes
    assert wh.read("failures", scope("1990s")).num_rows == 5


def _write_decade(root: str, decade: str, generations: int) -> None:
    wh = Warehouse(root)
    for g in range(generations):
        wh.replace("failures", rows(decade, 20 + g, f"{decade}-{g}"), scope=scope(decade))


@pytest.mark.slow
def test_concurrent_decades_lose_nothing(tmp_path):
    """Three processes replace three decades at the same time, several times each."""
    decades = ["1960s", "1970s", "1980s"]
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_decade, args=(str(tmp_path), d, 4)) for d in decades]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    wh = Warehouse(str(tmp_path))
    for decade in decades:
        got = wh.read("failures", scope(decade))
        assert got.num_rows == 23
        assert set(got.column("message").to_pylist()) == {f"{decade}-3"}


def test_maintenance_compacts_and_removes_old_versions(tmp_path):
    wh = Warehouse(str(tmp_path), compact_min_small_fragments=1000)
    for i in range(6):
        wh.replace("failures", rows("1980s", 10, f"g{i}"), scope=scope("1980s"))
    before = wh.read("failures")
    table = wh.table("failures")
    assert len(table.list_versions()) >= 6
    result = wh.maintain("failures", retention=dt.timedelta(0))
    assert result.versions_after <= 2 < result.versions_before
    assert result.fragments_after <= result.fragments_before
    assert wh.read("failures").sort_by("row_id").equals(before.sort_by("row_id"))


def test_every_table_has_the_common_columns():
    for spec in TABLES.values():
        names = spec.schema.names
        for column in (
            "row_id",
            "decade",
            "media_id",
            "model_id",
            "model_params",
            "pipeline_version",
            "created_at",
        ):
            assert column in names, (spec.name, column)
        assert spec.schema.field("created_at").type == pa.timestamp("us", tz="UTC")


def test_tables_written_before_the_page_columns_gain_them_on_open(tmp_path):
    """frame_text and search_documents written before issue 28's columns (script, normalised,
    image size; page, region) open and take new rows: the columns are added, old rows keep
    nulls there."""
    from archive_pipeline.core.warehouse import _columns_added_since

    added = {
        "frame_text": ["image_width", "image_height", "normalised", "script"],
        "search_documents": ["page", "region"],
    }
    for name, columns in added.items():
        contract = TABLES[name].schema
        before = pa.schema([f for f in contract if f.name not in columns])
        assert [f.name for f in _columns_added_since(before, contract)] == columns
    contract = TABLES["frame_text"].schema
    before = pa.schema([f for f in contract if f.name not in added["frame_text"]])
    wh = Warehouse(str(tmp_path))
    line = {
        "decade": "1780s",
        "media_id": "m",
        "cache_key": None,
        "model_id": "ocr",
        "model_params": "{}",
        "pipeline_version": "t",
        "created_at": NOW,
        "uri": "file:///scan.tif",
        "keyframe_id": "k",
        "keyframe_index": 0,
        "shot_index": 0,
        "time_s": 0.0,
        "confidence": 0.9,
        "box": [0.0] * 8,
        "language": "de",
    }
    old = {**line, "row_id": "a", "line_index": 0, "text": "Was ist"}
    wh.db.create_table("frame_text", pa.Table.from_pylist([old], schema=before))
    new = {**line, "row_id": "b", "line_index": 1, "text": "iſt", "normalised": "ist"}
    new |= {"script": "Fraktur", "image_width": 10, "image_height": 20, "language": "und"}
    wh.upsert("frame_text", [new], scope={"decade": "1780s"})
    read = {r["row_id"]: r for r in wh.read("frame_text").to_pylist()}
    assert read["a"]["normalised"] is None and read["a"]["text"] == "Was ist"
    assert (read["b"]["normalised"], read["b"]["script"]) == ("ist", "Fraktur")
