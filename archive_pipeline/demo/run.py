"""`make demo`: build the demo inbox if empty, materialise every partition through Dagster."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import time
from pathlib import Path

import dagster as dg

from archive_pipeline import paths
from archive_pipeline.core.decades import PARTITION_KEYS
from archive_pipeline.demo.build import build_demo_inbox
from archive_pipeline.report import (
    catalog_listing,
    contact_sheet,
    speech_listing,
    summarise,
    vision_listing,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def prepare_instance() -> Path:
    """Point DAGSTER_HOME at $ARCHIVE_HOME/dagster_home (unless set), with dagster.yaml."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(paths.dagster_home())))
    for folder in (home, paths.cache()):
        folder.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() and (REPO_ROOT / "dagster.yaml").exists():
        shutil.copyfile(REPO_ROOT / "dagster.yaml", config)
    return home


EXAMPLE_SEARCHES = [
    # (query, options): a spoken phrase, words shown on screen with a temporal filter, a speaker
    ("ask not what your country can do for you", {}),
    ("tram line in the nineties", {}),
    ("walked across the ice", {"speaker": "Dock worker", "mode": "text"}),
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
    """Run the main job for every decade on the embedded default and print what it produced."""
    from archive_pipeline.core.compute import RayRuntime
    from archive_pipeline.definitions import defs
    from archive_pipeline.defs.resources import build_ray, build_warehouse, outside_run

    home = prepare_instance()
    inbox = Path(os.environ.get("ARCHIVE_INBOX") or paths.inbox())
    if not inbox.exists() or not any(inbox.iterdir()):
        items = build_demo_inbox(inbox, shared_media=shared_media)
        print(f"Built demo archive: {len(items)} files in {inbox}")
    else:
        print(f"Using existing inbox {inbox}")
    instance = dg.DagsterInstance.get()
    definitions = defs()
    job = definitions.resolve_job_def("archive_job")
    ray_settings = outside_run(build_ray)
    runtime = None
    if os.environ.get("ARCHIVE_RAY_ADDRESS", "local") != "inline":
        # One Ray for all partition runs: the resource reuses an initialised Ray.
        runtime = RayRuntime(
            os.environ.get("ARCHIVE_RAY_ADDRESS", "local"),
            num_cpus=ray_settings.num_cpus if isinstance(ray_settings.num_cpus, int) else None,
        )
        runtime.ensure_started()
    failed = []
    start = time.perf_counter()
    try:
        for partition in partitions or list(PARTITION_KEYS):
            t0 = time.perf_counter()
            result = job.execute_in_process(
                instance=instance,
                partition_key=partition,
                run_config=QUIET_LOGS,
                raise_on_error=False,
                tags={"archive/trigger": "make demo"},
            )
            status = "ok" if result.success else "FAILED"
            print(
                f"  archive_job [{partition:>7}] {status} in {time.perf_counter() - t0:5.1f} s "
                f"(run {result.run_id[:8]})"
            )
            if not result.success:
                failed.append(partition)
    finally:
        if runtime is not None:
            runtime.shutdown()
    print(
        f"Materialised {len(partitions or PARTITION_KEYS)} partitions in "
        f"{time.perf_counter() - start:.1f} s; Dagster instance {home}"
    )
    warehouse = outside_run(build_warehouse).get_warehouse()
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
    print("\nOpen the Dagster UI with `make ui` (http://127.0.0.1:3000).")
    if failed:
        print(f"Runs failed for {failed}", file=sys.stderr)
        return 1
    return 0
