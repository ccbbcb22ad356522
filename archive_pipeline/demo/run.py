"""`make demo`: build the demo inbox if empty, materialise every partition through Dagster."""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

from archive_pipeline.config import paths, settings
from archive_pipeline.demo.build import build_demo_inbox
from archive_pipeline.ops.report import (
    catalog_listing,
    contact_sheet,
    speech_listing,
    summarise,
    vision_listing,
)
from archive_pipeline.ops.runner import planned_decades, run_decades

EXAMPLE_SEARCHES = [
    # (query, options): a spoken phrase, words shown on screen with a temporal filter, a speaker,
    # a German question answered by German and English speech (one multilingual vector space),
    ("ask not what your country can do for you", {}),
    ("tram line in the nineties", {}),
    ("walked across the ice", {"speaker": "Dock worker", "mode": "text"}),
    ("Menschen an der Grenze", {"mode": "vector"}),
    # a title card shown 2 s mid-shot (text-aware sampling), a scanned page (a still item)
    ("Kino Nord presents", {"mode": "text"}),
    ("Fähre nach Spandau", {"mode": "text"}),
]


def example_searches(warehouse) -> str:
    """The demo's closing example searches, as `archive-search` prints them."""
    from archive_pipeline.search.cli import render
    from archive_pipeline.search.query import Searcher, SearchError, configured_clip

    searcher = Searcher(warehouse, clip=configured_clip())
    blocks = ['\nExample searches (archive-search "query" [--decade 1980s] [--mode hybrid]):']
    for query, options in EXAMPLE_SEARCHES:
        try:
            results = searcher.search(query=query, limit=3, thumbnails=False, **options)
        except SearchError as exc:
            blocks.append(f"\n$ archive-search {query!r}: {exc}")
            continue
        flags = "".join(f" --{name} {value!r}" for name, value in options.items())
        blocks.append(f"\n$ archive-search {query!r}{flags}\n{render(results)}")
    return "\n".join(blocks)


def run_demo(*, shared_media: Path | None, partitions: list[str] | None = None) -> int:
    """Run the main job for every decade with media on the embedded default and print what it
    produced."""
    from archive_pipeline.core.warehouse import Warehouse

    inbox = Path(settings.INBOX.read())
    if not inbox.exists() or not any(inbox.iterdir()):
        items = build_demo_inbox(inbox, shared_media=shared_media)
        print(f"Built demo archive: {len(items)} files in {inbox}")
    else:
        print(f"Using existing inbox {inbox}")
    start = time.perf_counter()
    decades, _ = planned_decades(partitions)
    print(f"Running every asset for the decades with media: {', '.join(decades)}")
    runs = run_decades(decades, trigger="make demo")
    failed = [run.decade for run in runs if not run.success]
    print(
        f"Materialised {len(runs)} partitions in {time.perf_counter() - start:.1f} s; "
        f"Dagster instance {settings.DAGSTER_HOME.read()}"
    )
    warehouse = Warehouse.from_settings()
    # The demo is the only writer, so old versions can go now (production keeps a window).
    warehouse.maintain_all(retention=dt.timedelta(0))
    print(summarise(warehouse))
    print(catalog_listing(warehouse))
    print(speech_listing(warehouse))
    print(vision_listing(warehouse))
    sheet = contact_sheet(warehouse, paths.archive_home() / "keyframes.jpg")
    if sheet:
        print(f"\nKeyframe thumbnails (from the keyframes table): {sheet}")
    print(example_searches(warehouse))
    service = settings.resolve("search_service")
    print("\nOpen the Dagster UI with `make ui` (http://127.0.0.1:3000).")
    print(
        f"Search the demo in a browser: `make serve` (or .venv/bin/archive-search serve), then "
        f"open http://{service.host}:{service.port}/ (try 'Kino Nord presents'); the JSON API "
        f"is at /search?q=..., described at /openapi.json."
    )
    if failed:
        print(f"Runs failed for {failed}", file=sys.stderr)
        return 1
    return 0
