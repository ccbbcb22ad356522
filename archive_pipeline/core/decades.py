"""Decade assignment rules (DESIGN §3): catalogue metadata, path segment, year in name, undated."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from archive_pipeline.core.errors import PermanentError

DECADES: tuple[str, ...] = tuple(f"{year}s" for year in range(1900, 2030, 10))
UNDATED = "undated"
PARTITION_KEYS: tuple[str, ...] = (*DECADES, UNDATED)
FIRST_YEAR, LAST_YEAR = 1900, 2029

# Rule names stored per item in `media_catalog.decade_rule`, in the order they are tried.
RULE_SIDECAR = "sidecar"
RULE_CATALOGUE_CSV = "catalogue_csv"
RULE_PATH_SEGMENT = "path_segment"
RULE_FILENAME_YEAR = "filename_year"
RULE_UNDATED = "undated"

CATALOGUE_CSV = "catalogue.csv"
SIDECAR_SUFFIX = ".json"

# Metadata keys that carry a recording date or year, most specific first.
_DATE_KEYS = ("recorded_date", "recorded", "date", "broadcast_date")
_YEAR_KEYS = ("recorded_year", "year")
_SEGMENT_RE = re.compile(r"^(?:decade=)?((?:19|20)\d0s)$")
_YEAR_RE = re.compile(r"(?<!\d)(\d{4})(?!\d)")


def decade_of_year(year: int) -> str | None:
    """Return the decade partition key of a year, or None outside 1900-2029."""
    if FIRST_YEAR <= year <= LAST_YEAR:
        return f"{year // 10 * 10}s"
    return None


class MetadataError(PermanentError, ValueError):
    """A sidecar or catalogue row that cannot be used (malformed JSON, bad date, wrong types)."""


@dataclass(frozen=True)
class CatalogueMetadata:
    """Descriptive metadata for one item, from its sidecar JSON or its `catalogue.csv` row."""

    source: str  # RULE_SIDECAR or RULE_CATALOGUE_CSV
    title: str | None = None
    recorded_date: str | None = None  # ISO date (YYYY, YYYY-MM or YYYY-MM-DD) as given
    year: int | None = None
    language: str | None = None
    speakers: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """Return the full metadata record as canonical JSON."""
        return json.dumps(dict(self.raw), sort_keys=True, ensure_ascii=False, default=str)


@dataclass(frozen=True)
class DecadeAssignment:
    """An item's decade, the rule that decided it and the evidence (stored per item)."""

    decade: str
    rule: str
    evidence: str
    # What a rule found and could not use (a year out of range, file-name years that disagree),
    # whichever rule decided: reported as the item's metadata_warning.
    notes: tuple[str, ...] = ()


def _year_from_value(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise MetadataError(f"{key}={value!r} is not a date or year")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        match = re.match(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?(?:[T ].*)?$", text)
        if match:
            year, month, day = match.groups()
            if month:
                try:
                    dt.date(int(year), int(month), int(day or 1))
                except ValueError as exc:
                    raise MetadataError(f"{key}={value!r} is not a valid date: {exc}") from None
            return int(year)
    raise MetadataError(f"{key}={value!r} is not a date (YYYY, YYYY-MM or YYYY-MM-DD) or year")


def parse_metadata(record: Mapping[str, Any], *, source: str) -> CatalogueMetadata:
    """Validate a sidecar/catalogue record; raise MetadataError with the reason if unusable."""
    if not isinstance(record, Mapping):
        raise MetadataError(f"expected a JSON object, got {type(record).__name__}")
    clean = {k: v for k, v in record.items() if v not in (None, "")}
    recorded_date = None
    year = None
    for key in _DATE_KEYS:
        if key in clean:
            year = _year_from_value(clean[key], key)
            recorded_date = str(clean[key]).strip()
            break
    if year is None:
        for key in _YEAR_KEYS:
            if key in clean:
                year = _year_from_value(clean[key], key)
                break
    speakers = clean.get("speakers", ())
    if isinstance(speakers, str):
        speakers = [s.strip() for s in speakers.split(";") if s.strip()]
    if not isinstance(speakers, list | tuple) or not all(isinstance(s, str) for s in speakers):
        raise MetadataError(f"speakers={speakers!r} must be a list of names or 'a;b;c'")
    for key in ("title", "language"):
        if key in clean and not isinstance(clean[key], str):
            raise MetadataError(f"{key}={clean[key]!r} must be a string")
    return CatalogueMetadata(
        source=source,
        title=clean.get("title"),
        recorded_date=recorded_date,
        year=year,
        language=clean.get("language"),
        speakers=tuple(speakers),
        raw=clean,
    )


def parse_sidecar(data: bytes) -> CatalogueMetadata:
    """Parse a `<file>.json` sidecar; raise MetadataError if it is malformed."""
    try:
        record = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MetadataError(f"malformed JSON: {exc}") from None
    return parse_metadata(record, source=RULE_SIDECAR)


def parse_catalogue_csv(data: bytes) -> tuple[dict[str, Mapping[str, str]], list[str]]:
    """Parse `catalogue.csv` (a `path` column plus metadata columns) into rows keyed by path.

    Returns the rows and a list of warnings (duplicate or missing paths).
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return {}, [f"{CATALOGUE_CSV} is not UTF-8: {exc}"]
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "path" not in reader.fieldnames:
        return {}, [f"{CATALOGUE_CSV} has no 'path' column (columns: {reader.fieldnames})"]
    rows: dict[str, Mapping[str, str]] = {}
    warnings = []
    for line_no, row in enumerate(reader, start=2):
        path = (row.get("path") or "").strip().removeprefix("./")
        if not path:
            warnings.append(f"{CATALOGUE_CSV}:{line_no}: empty path")
            continue
        if path in rows:
            warnings.append(f"{CATALOGUE_CSV}:{line_no}: duplicate path {path!r}, first row kept")
            continue
        rows[path] = {k: (v or "").strip() for k, v in row.items() if k and k != "path"}
    return rows, warnings


def decade_from_path(key: str) -> tuple[str, str] | None:
    """Return (decade, segment) for a directory segment `1980s/` or `decade=1980s/`, else None."""
    for segment in PurePosixPath(key).parts[:-1]:
        match = _SEGMENT_RE.match(segment)
        if match and match.group(1) in DECADES:
            return match.group(1), segment
    return None


def years_in_name(key: str) -> list[int]:
    """Return the four-digit years 1900-2029 that stand alone in the file name."""
    name = PurePosixPath(key).name
    return [int(y) for y in _YEAR_RE.findall(name) if decade_of_year(int(y))]


def assign_decade(key: str, metadata: CatalogueMetadata | None = None) -> DecadeAssignment:
    """Apply the decade rules in order: metadata date/year, path segment, year in name, undated.

    Metadata whose year is outside 1900-2029 is not used (the next rule decides). Several years
    in a file name decide only when they agree on one decade; otherwise the item is undated.
    """
    notes = []
    if metadata is not None and metadata.year is not None:
        decade = decade_of_year(metadata.year)
        if decade:
            field_name = "recorded_date" if metadata.recorded_date else "year"
            value = metadata.recorded_date or metadata.year
            return DecadeAssignment(
                decade, metadata.source, f"{metadata.source} {field_name}={value}"
            )
        notes.append(f"{metadata.source} year {metadata.year} outside 1900-2029 ignored")
    by_path = decade_from_path(key)
    if by_path:
        return DecadeAssignment(
            by_path[0], RULE_PATH_SEGMENT, f"path segment {by_path[1]}/", tuple(notes)
        )
    years = years_in_name(key)
    decades = sorted({decade_of_year(y) for y in years})
    if len(decades) == 1:
        return DecadeAssignment(
            decades[0],
            RULE_FILENAME_YEAR,
            f"year {years[0]} in file name" + _join(notes),
            tuple(notes),
        )
    if len(decades) > 1:
        notes.append(f"years {years} in file name disagree on the decade")
    return DecadeAssignment(UNDATED, RULE_UNDATED, "no date found" + _join(notes), tuple(notes))


def _join(notes: list[str]) -> str:
    return "".join(f"; {n}" for n in notes)
