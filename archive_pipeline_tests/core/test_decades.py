"""Decade rules of DESIGN §3, one case per rule and the edge cases."""

import pytest

from archive_pipeline.core import decades as dec
from archive_pipeline.core.inventory import scan_inventory
from archive_pipeline.core.local_store import LocalStore


def test_partition_keys_cover_1900s_to_2020s_plus_undated():
    assert dec.PARTITION_KEYS[0] == "1900s"
    assert dec.PARTITION_KEYS[-2:] == ("2020s", "undated")
    assert len(dec.PARTITION_KEYS) == 14


@pytest.mark.parametrize(
    ("key", "metadata", "decade", "rule"),
    [
        ("a/b/clip.mp4", {"recorded_date": "1987-03-14"}, "1980s", "sidecar"),
        ("a/b/clip.mp4", {"year": 1955}, "1950s", "sidecar"),
        ("a/b/clip.mp4", {"date": "1969"}, "1960s", "sidecar"),
        ("1990s/clip_1975.mp4", {"year": "2003"}, "2000s", "sidecar"),  # metadata first
        ("archive/1980s/tape.wav", None, "1980s", "path_segment"),
        ("archive/decade=1970s/tape.wav", None, "1970s", "path_segment"),
        ("1990s/clip_1975.mp4", None, "1990s", "path_segment"),  # path before file name
        ("tapes/news_1994_final.mp4", None, "1990s", "filename_year"),
        ("tapes/1900.wav", None, "1900s", "filename_year"),
        ("tapes/2029-end.wav", None, "2020s", "filename_year"),
        ("tapes/1899_reel.wav", None, "undated", "undated"),  # before 1900
        ("tapes/2030_reel.wav", None, "undated", "undated"),  # after 2029
        ("tapes/reel_19871.wav", None, "undated", "undated"),  # five digits: not a year
        ("tapes/1987_copy_1989.wav", None, "1980s", "filename_year"),  # two years, one decade
        ("tapes/1987_copy_2003.wav", None, "undated", "undated"),  # two decades: ambiguous
        ("1880s/tape.wav", None, "undated", "undated"),  # not a partition
        ("tapes/untitled.wav", None, "undated", "undated"),
        ("x/clip.mp4", {"year": 1899}, "undated", "undated"),  # metadata out of range
        ("1960s/clip.mp4", {"year": 2031}, "1960s", "path_segment"),  # falls through
    ],
)
def test_assign_decade(key, metadata, decade, rule):
    meta = dec.parse_metadata(metadata, source="sidecar") if metadata is not None else None
    result = dec.assign_decade(key, meta)
    assert (result.decade, result.rule) == (decade, rule), result.evidence


def test_ambiguous_and_out_of_range_are_explained():
    assert "disagree" in dec.assign_decade("t/1987_copy_2003.wav").evidence
    meta = dec.parse_metadata({"year": 1899}, source="sidecar")
    assert "1899 outside 1900-2029" in dec.assign_decade("x.wav", meta).evidence


def test_an_out_of_range_year_is_a_warning_whichever_rule_decides(tmp_path):
    from archive_pipeline.core.inventory import scan_inventory
    from archive_pipeline.core.local_store import LocalStore

    meta = dec.parse_metadata({"year": 3000}, source="sidecar")
    decided = dec.assign_decade("1960s/tape.wav", meta)  # the folder decides
    assert decided.rule == "path_segment" and decided.notes == (
        "sidecar year 3000 outside 1900-2029 ignored",
    )
    (tmp_path / "1960s").mkdir()
    (tmp_path / "1960s/tape.wav").write_bytes(b"RIFF")
    (tmp_path / "1960s/tape.wav.json").write_text('{"year": 3000}')
    (tmp_path / "1960s/ok.wav").write_bytes(b"RIFF")
    items = {item.key: item for item in scan_inventory(LocalStore(str(tmp_path))).items}
    assert items["1960s/tape.wav"].decade == "1960s"
    assert "year 3000 outside 1900-2029" in items["1960s/tape.wav"].metadata_warning
    assert items["1960s/ok.wav"].metadata_warning is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "malformed JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"date": "1987-02-30"}', "not a valid date"),
        (b'{"year": "sometime"}', "not a date"),
        (b'{"year": true}', "not a date or year"),
        (b'{"speakers": 3}', "speakers"),
        (b'{"title": 5}', "title"),
    ],
)
def test_malformed_sidecar_raises_clear_error(raw, message):
    with pytest.raises(dec.MetadataError, match=message):
        dec.parse_sidecar(raw)


def test_sidecar_fields_are_parsed():
    meta = dec.parse_sidecar(
        b'{"title": "T", "recorded_date": "1987-03-14", "language": "de", "speakers": ["A", "B"]}'
    )
    assert (meta.title, meta.year, meta.language, meta.speakers) == ("T", 1987, "de", ("A", "B"))


def test_catalogue_csv_rows_and_warnings():
    rows, warnings = dec.parse_catalogue_csv(
        b"path,year,title,speakers\n./a.wav,1961,A,x;y\na.wav,1970,dup,\n,1980,,\n"
    )
    assert rows == {"a.wav": {"year": "1961", "title": "A", "speakers": "x;y"}}
    assert any("duplicate" in w for w in warnings) and any("empty path" in w for w in warnings)
    assert dec.parse_catalogue_csv(b"file,year\n")[1][0].startswith("catalogue.csv has no 'path'")


def test_inventory_applies_rules_in_order(tmp_path):
    files = {
        "side/a.wav": b"x",
        "side/a.wav.json": b'{"recorded_date": "1971-05-01", "title": "Side"}',
        "broken/b_1995.wav": b"x",
        "broken/b_1995.wav.json": b"{oops",
        "csv/c.mp4": b"x",
        "1980s/d.flac": b"x",
        "e_2011.mp3": b"x",
        "notes.txt": b"not media",
        "catalogue.csv": b"path,date,title\ncsv/c.mp4,1949-12-31,From CSV\nmissing.wav,1950,\n",
    }
    for key, data in files.items():
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / key).write_bytes(data)
    inventory = scan_inventory(LocalStore(str(tmp_path)))
    got = {i.key: (i.decade, i.assignment.rule) for i in inventory.items}
    assert got == {
        "side/a.wav": ("1970s", "sidecar"),
        "broken/b_1995.wav": ("1990s", "filename_year"),  # malformed sidecar: next rule
        "csv/c.mp4": ("1940s", "catalogue_csv"),
        "1980s/d.flac": ("1980s", "path_segment"),
        "e_2011.mp3": ("2010s", "filename_year"),
    }
    broken = next(i for i in inventory.items if i.key == "broken/b_1995.wav")
    assert "malformed JSON" in broken.metadata_warning
    assert any("missing.wav" in w for w in inventory.warnings)
