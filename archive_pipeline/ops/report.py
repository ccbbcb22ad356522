"""Plain-text summaries of the warehouse: rows per table and decade, versions, failures."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from archive_pipeline.contract.schemas import TABLES
from archive_pipeline.core.decades import PARTITION_KEYS
from archive_pipeline.core.warehouse import Warehouse


def _frame(warehouse: Warehouse, name: str) -> pl.DataFrame:
    return pl.from_arrow(warehouse.read(name))


def summarise(warehouse: Warehouse) -> str:
    """Return a per-table, per-decade summary of the warehouse and the recorded failures."""
    lines = [f"Warehouse {warehouse.root}"]
    names = [n for n in TABLES if n in warehouse.table_names()]
    if not names:
        return lines[0] + "\n  (no tables yet)"
    order = {key: i for i, key in enumerate(PARTITION_KEYS)}
    for name in names:
        table = warehouse.table(name)
        frame = _frame(warehouse, name)
        lines.append(
            f"\n{name}: {frame.height} rows, version {table.version}, "
            f"{len(table.list_versions())} version(s) kept"
        )
        if frame.is_empty():
            continue
        if name == "media_catalog":
            per = frame.group_by("decade").agg(
                pl.len().alias("rows"),
                (pl.col("kind") == "audio").sum().alias("audio"),
                (pl.col("kind") == "video").sum().alias("video"),
                (pl.col("kind") == "image").sum().alias("image"),
                (pl.col("duration_s").fill_null(0).sum() / 60).round(2).alias("minutes"),
                pl.col("decade_rule").unique().sort().str.join(",").alias("rules"),
            )
        else:
            per = frame.group_by("decade").agg(pl.len().alias("rows"))
        per = per.sort(pl.col("decade").replace_strict(order, default=99))
        header = "  " + " ".join(f"{c:>9}" if c != "rules" else c for c in per.columns)
        lines.append(header)
        for row in per.iter_rows():
            lines.append(
                "  "
                + " ".join(
                    f"{v!s:>9}" if i < len(row) - 1 or per.columns[-1] != "rules" else str(v)
                    for i, v in enumerate(row)
                )
            )
    if "failures" in names:
        failures = _frame(warehouse, "failures")
        if failures.height:
            lines.append("\nFailures (recorded, not fatal; the rest of each decade was committed):")
            for row in failures.sort("decade", "store_key").iter_rows(named=True):
                lines.append(
                    f"  {row['decade']:>8}  {row['stage']}  {row['store_key']}: "
                    f"{row['error_class']}: {row['message'][:140]}"
                )
    return "\n".join(lines)


def speech_listing(warehouse: Warehouse, *, limit: int = 40) -> str:
    """Return the diarised speech, one line per segment: decade, file, time, speaker, text."""
    if "diarised_segments" not in warehouse.table_names():
        return ""
    frame = _frame(warehouse, "diarised_segments").sort("decade", "uri", "start_s")
    lines = ["\ndiarised_segments (who said what):"]
    for row in frame.head(limit).iter_rows(named=True):
        who = row["speaker_name"] or row["speaker"] or "?"
        name = row["uri"].rsplit("/", 1)[-1]
        lines.append(
            f"  {row['decade']:>8} {name[:28]:<28} {row['start_s']:6.1f}s  {who[:16]:<16} "
            f"{row['text'][:70]}"
        )
    if frame.height > limit:
        lines.append(f"  ... {frame.height - limit} more")
    return "\n".join(lines)


def catalog_listing(warehouse: Warehouse) -> str:
    """Return one line per catalogued item: decade, rule, kind, duration, key."""
    if "media_catalog" not in warehouse.table_names():
        return ""
    frame = _frame(warehouse, "media_catalog").sort("decade", "store_key")
    lines = ["\nmedia_catalog items:"]
    for row in frame.iter_rows(named=True):
        duration = f"{row['duration_s']:.1f}s" if row["duration_s"] else "-"
        size = f"{row['width']}x{row['height']}" if row["width"] else ""
        lines.append(
            f"  {row['decade']:>8} {row['decade_rule']:<14} {row['kind']:<6} {duration:>7} "
            f"{size:>10}  {row['store_key']}"
        )
    return "\n".join(lines)


def vision_listing(warehouse: Warehouse, *, limit: int = 30) -> str:
    """Return one line per keyframe: decade, file, time, shot, and the text read on it."""
    names = warehouse.table_names()
    if "keyframes" not in names:
        return ""
    keyframes = _frame(warehouse, "keyframes").drop("thumbnail", "full_frame")
    texts = (
        _frame(warehouse, "frame_text")
        .sort("keyframe_id", "line_index")
        .group_by("keyframe_id", maintain_order=True)
        .agg(pl.col("text").str.join(" / "))
        if "frame_text" in names
        else pl.DataFrame(schema={"keyframe_id": pl.String, "text": pl.String})
    )
    frame = keyframes.join(texts, left_on="row_id", right_on="keyframe_id", how="left").sort(
        "decade", "uri", "time_s"
    )
    shots = _frame(warehouse, "shots").height if "shots" in names else 0
    removed = int(frame["replaces"].list.len().sum()) if frame.height else 0
    reasons = frame["reason"].value_counts() if frame.height else None
    count = dict(reasons.iter_rows()) if reasons is not None else {}
    lines = [
        f"\nkeyframes and frame_text ({frame['uri'].n_unique()} videos and stills, {shots} shots, "
        f"{frame.height} keyframes: {count.get('text', 0)} for on-screen text, "
        f"{count.get('page', 0)} pages of stills; {removed} near-duplicates removed; "
        "T: kept for its on-screen text):"
    ]
    for row in frame.head(limit).iter_rows(named=True):
        name = row["uri"].rsplit("/", 1)[-1]
        text = row["text"] or ""
        where = (
            f"page {row['frame_index'] + 1:<4}      "
            if row["reason"] == "page"
            else f"{row['time_s']:6.1f}s  shot {row['shot_index']:<3}"
        )
        mark = "T" if row["reason"] == "text" else " "
        lines.append(f"  {row['decade']:>8} {name[:28]:<28} {where} {mark} {text[:70]}")
    if frame.height > limit:
        lines.append(f"  ... {frame.height - limit} more")
    if "segment_embeddings" in names:
        vectors = _frame(warehouse, "segment_embeddings")
        models = ", ".join(sorted(vectors["model_id"].unique())) if vectors.height else "-"
        lines.append(f"\nsegment_embeddings: {vectors.height} texts embedded ({models})")
    if "keyframe_embeddings" in names:
        lines.append(
            f"keyframe_embeddings: {_frame(warehouse, 'keyframe_embeddings').height} images"
        )
    else:
        lines.append(
            "keyframe_embeddings: no image-text model configured (set ARCHIVE_CLIP_MODEL and "
            "ARCHIVE_CLIP_PRETRAINED); nothing written"
        )
    return "\n".join(lines)


def contact_sheet(warehouse: Warehouse, out: Path, *, columns: int = 6) -> Path | None:
    """Write the keyframe thumbnails as one labelled JPEG grid (decade, file, time)."""
    import io

    from PIL import Image, ImageDraw

    if "keyframes" not in warehouse.table_names():
        return None
    rows = (
        _frame(warehouse, "keyframes")
        .select("decade", "uri", "time_s", "thumbnail")
        .sort("decade", "uri", "time_s")
        .to_dicts()
    )
    if not rows:
        return None
    cell_w, cell_h, label_h = 320, 180, 16
    sheet_rows = (len(rows) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * cell_w, sheet_rows * (cell_h + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, row in enumerate(rows):
        x, y = (i % columns) * cell_w, (i // columns) * (cell_h + label_h)
        image = Image.open(io.BytesIO(row["thumbnail"])).convert("RGB")
        image.thumbnail((cell_w, cell_h))
        sheet.paste(image, (x, y))
        name = row["uri"].rsplit("/", 1)[-1]
        draw.text(
            (x + 2, y + cell_h + 2),
            f"{row['decade']} {name[:30]} {row['time_s']:.1f}s",
            fill="black",
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, quality=85)
    return out
