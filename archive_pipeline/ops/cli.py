"""`archive-pipeline` command line: run, demo, summary, export, maintenance."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `archive-pipeline` command."""
    parser = argparse.ArgumentParser(prog="archive-pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="process your archive: run every asset for every decade with media (or the given "
        "ones), with progress, recorded in the Dagster instance",
    )
    run.add_argument(
        "--decade",
        action="append",
        metavar="D",
        help="only this decade (repeatable), e.g. --decade 1980s --decade undated",
    )
    run.add_argument(
        "--inbox",
        metavar="PATH_OR_S3",
        help="the media store: a folder or s3://bucket/prefix (default: ARCHIVE_INBOX, else "
        "the inbox the warehouse was built from, else $ARCHIVE_HOME/inbox)",
    )
    run.add_argument(
        "--rerun",
        action="store_true",
        help="run every decade, also those unchanged (same files, code and settings) since "
        "their last run finished clean",
    )
    run.add_argument(
        "--verbose",
        action="store_true",
        help="Dagster's console log with its DEBUG events instead of the progress lines "
        "(ARCHIVE_VERBOSE)",
    )
    run.add_argument(
        "--allow-removals",
        action="store_true",
        help="let this run remove the rows of items the inbox no longer lists even where the "
        "deletion guard would stop it (ARCHIVE_ALLOW_REMOVALS)",
    )
    check = sub.add_parser(
        "check",
        help="run the asset checks alone over the committed tables (nothing is computed "
        "again), e.g. after fixing a file; recorded in the Dagster instance like a run",
    )
    check.add_argument("--decade", action="append", metavar="D", help="only this decade")
    check.add_argument("--asset", action="append", metavar="A", help="only this asset's checks")
    check.add_argument(
        "--check", action="append", metavar="NAME", help="only this check (e.g. unique_rows)"
    )
    ui = sub.add_parser(
        "ui",
        help="the Dagster UI and daemon (`dagster dev`) on 127.0.0.1 against DAGSTER_HOME, "
        "stopped with everything it started on Ctrl-C or SIGTERM (what `make ui` runs)",
    )
    ui.add_argument("--port", type=int, default=3000)
    ui.add_argument(
        "--no-workers",
        action="store_true",
        help="without the warm model workers (each run then starts its own Ray and loads models)",
    )
    sub.add_parser(
        "workers",
        help="keep warm model workers for the runs over ARCHIVE_HOME (a local Ray they join, "
        "models kept loaded between runs) until Ctrl-C or SIGTERM; `ui` starts it too",
    )
    repair = sub.add_parser(
        "repair",
        help="check the tables, remove what cannot be read (lost or truncated data files; a "
        "table that cannot be opened is moved aside) and run the decades again to rebuild it",
    )
    repair.add_argument("--table", action="append", metavar="T", help="only this table")
    repair.add_argument("--decade", action="append", metavar="D", help="only rerun this decade")
    repair.add_argument(
        "--no-run", action="store_true", help="only check and remove; rebuild with a later run"
    )
    demo = sub.add_parser("demo", help="build the demo inbox if empty and run every partition")
    demo.add_argument(
        "--shared-media",
        type=Path,
        default=Path("../shared/media"),
        help="real media to add to the demo archive when the folder exists",
    )
    demo.add_argument("--partition", action="append", help="only these partitions")
    sub.add_parser("summary", help="print rows per table and decade, and the failures")
    maintain = sub.add_parser("maintain", help="compact tables and remove old versions")
    maintain.add_argument(
        "--retention-minutes",
        type=float,
        default=None,
        help="keep versions newer than this (default: the configured window)",
    )
    export = sub.add_parser("export", help="subtitles (srt, vtt) or speaker turns (rttm) of a file")
    export.add_argument("media", help="media_id, URI or store key (a unique substring is enough)")
    export.add_argument("--format", choices=["srt", "vtt", "rttm"], default="srt")
    export.add_argument("--out", type=Path, help="write here instead of standard output")
    build = sub.add_parser("build-demo-inbox", help="write the demo archive into a folder")
    build.add_argument("inbox", type=Path)
    build.add_argument("--shared-media", type=Path, default=None)
    table = sub.add_parser("settings", help="print the settings table (README) or rewrite it")
    table.add_argument("--write", type=Path, metavar="README", help="regenerate it in this file")
    tables = sub.add_parser(
        "tables", help="print the column tables (docs/tables.md) or rewrite them"
    )
    tables.add_argument("--write", type=Path, metavar="DOC", help="regenerate them in this file")
    args = parser.parse_args(argv)
    if args.command == "tables":
        from archive_pipeline.contract.table_docs import render_markdown, update_doc

        if args.write:
            args.write.write_text(update_doc(args.write.read_text()))
        else:
            print(render_markdown())
        return 0
    if args.command == "settings":
        from archive_pipeline.config import settings

        if args.write:
            args.write.write_text(settings.replace_table(args.write.read_text()))
        else:
            print(settings.markdown_table())
        return 0

    from archive_pipeline.config import settings

    if args.command in ("run", "check", "demo", "repair", "maintain"):  # before any work
        problems = settings.validate()
        if problems:
            print("bad settings (nothing was run):", file=sys.stderr)
            for line in problems:
                print(f"  {line}", file=sys.stderr)
            return 2
    if args.command == "run":
        if args.verbose:
            os.environ[settings.VERBOSE.env] = "1"
        return _run(args.decade, args.inbox, allow_removals=args.allow_removals, rerun=args.rerun)
    if args.command == "ui":
        from archive_pipeline.ops.runner import prepare_instance
        from archive_pipeline.ops.ui import serve

        prepare_instance()
        return serve(args.port, warm_workers=not args.no_workers)
    if args.command == "workers":
        return _workers()
    if args.command == "check":
        return _check(args.decade, args.asset, args.check)
    if args.command == "repair":
        return _repair(args.table, args.decade, run=not args.no_run)
    if args.command == "demo":
        from archive_pipeline.demo.run import run_demo

        shared = args.shared_media if args.shared_media and args.shared_media.is_dir() else None
        return run_demo(shared_media=shared, partitions=args.partition)
    from archive_pipeline.core.warehouse import DamagedTableError

    try:
        return _read_command(args)
    except DamagedTableError as exc:
        print(f"archive-pipeline {args.command}: {exc}", file=sys.stderr)
        return 3


def _read_command(args: argparse.Namespace) -> int:
    """summary, maintain, export, build-demo-inbox."""
    from archive_pipeline.core.warehouse import Warehouse, WarehouseMissingError

    if args.command in ("summary", "export"):  # read-only: they create nothing
        try:
            warehouse = Warehouse.from_settings(read_only=True).require()
        except WarehouseMissingError as exc:
            print(f"archive-pipeline {args.command}: {exc}", file=sys.stderr)
            return 2
    if args.command == "summary":
        from archive_pipeline.ops.report import catalog_listing, speech_listing, summarise

        print(summarise(warehouse))
        print(catalog_listing(warehouse))
        print(speech_listing(warehouse))
    elif args.command == "maintain":
        retention = (
            dt.timedelta(minutes=args.retention_minutes)
            if args.retention_minutes is not None
            else None
        )
        for result in Warehouse.from_settings().maintain_all(retention=retention):
            print(result)
    elif args.command == "export":
        return _export(warehouse, args.media, args.format, args.out)
    elif args.command == "build-demo-inbox":
        from archive_pipeline.demo.build import build_demo_inbox

        for item in build_demo_inbox(args.inbox, shared_media=args.shared_media):
            print(item.decade, item.key)
    return 0


def _workers() -> int:
    """`archive-pipeline workers`: the warm model service until SIGTERM, SIGINT or SIGHUP."""
    from archive_pipeline.config import paths
    from archive_pipeline.core import workers
    from archive_pipeline.core.ray_runtime import RayRuntime
    from archive_pipeline.defs.resources import RayResource

    path = workers.service_file(paths.archive_home())
    running = workers.read_service(path)
    if running is not None:
        print(f"warm model workers already run for this ARCHIVE_HOME (pid {running.pid})")
        return 1
    runtime = RayResource().compute()
    if not isinstance(runtime, RayRuntime):
        print("warm model workers need Ray (ARCHIVE_RAY_ADDRESS is inline)", file=sys.stderr)
        return 2
    if runtime.address not in ("", "local"):  # a cluster keeps the registry until it stops
        runtime.ensure_started()
        workers.start_registry()
        print(f"warm model workers: the registry runs on the Ray cluster at {runtime.address}")
        runtime.shutdown()
        return 0
    workers.serve(runtime, path, announce=lambda line: print(line, flush=True))
    return 0


def _check(decades: list[str] | None, assets: list[str] | None, names: list[str] | None) -> int:
    """`archive-pipeline check`: the checks alone, per decade, over the committed tables."""
    from archive_pipeline.ops.runner import CHECK_TRIGGER, check_keys, planned_decades, run_decades

    if not use_inbox(None):
        return 2
    try:
        keys = check_keys(assets, names)
        planned, _ = planned_decades(decades)
    except (ValueError, FileNotFoundError) as exc:
        print(exc, file=sys.stderr)
        return 2
    if not planned:
        print("nothing to check: no media and no catalogued decades")
        return 0
    runs = run_decades(planned, trigger=CHECK_TRIGGER, only_checks=keys)
    failed = [r for r in runs if not r.success or r.failed_checks]
    passed = sum(1 for r in runs if r.success and not r.failed_checks)
    print(
        f"{len(keys)} checks over {len(runs)} decade(s): {passed} decade(s) passed"
        + (f"; not passed or failed: {[r.decade for r in failed]} (above)" if failed else "")
    )
    return 1 if failed else 0


def _repair(tables: list[str] | None, decades: list[str] | None, *, run: bool) -> int:
    """`archive-pipeline repair`: remove what cannot be read, then rebuild by running."""
    from archive_pipeline.core.repair import repair
    from archive_pipeline.core.warehouse import Warehouse

    try:
        results = repair(Warehouse.from_settings(), tables)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    for result in results:
        print(result.line())
    if not run:
        print("Rebuild with `archive-pipeline run` (the ledger says what is missing).")
        return 0
    return _run(decades, None)


def remembered_inbox() -> str | None:
    """The inbox the warehouse was built from (a folder or s3:// URI), if it records one."""
    from urllib.parse import unquote, urlparse

    from archive_pipeline.core.warehouse import Warehouse

    try:
        note = Warehouse.from_settings(read_only=True).read_note("inbox")
    except Exception:  # no warehouse yet, or one that cannot be read: the default applies
        return None
    uri = (note or {}).get("inbox")
    if not uri:
        return None
    return unquote(urlparse(uri).path) if uri.startswith("file://") else uri


def use_inbox(inbox: str | None) -> bool:
    """Point ARCHIVE_INBOX at `inbox`, else (when unset) at the inbox the warehouse was built
    from; False (said on stderr) when the folder does not exist."""
    from archive_pipeline.config import settings

    if not inbox and not os.environ.get(settings.INBOX.env, "").strip():
        inbox = remembered_inbox()
        if inbox:
            print(f"inbox: {inbox} (the one this warehouse was built from; --inbox for another)")
    if inbox:
        if "://" not in inbox and not Path(inbox).is_dir():
            print(f"inbox {inbox} is not a folder", file=sys.stderr)
            return False
        os.environ[settings.INBOX.env] = inbox if "://" in inbox else str(Path(inbox).resolve())
    return True


def _run(
    decades: list[str] | None,
    inbox: str | None,
    *,
    allow_removals: bool = False,
    rerun: bool = False,
) -> int:
    """`archive-pipeline run`: the decades that have media, or those asked for (those
    unchanged since their last clean run are not run again, unless `rerun`)."""
    import time

    from archive_pipeline.ops.runner import decade_inputs, plan_decades, run_decades

    if allow_removals:
        os.environ["ARCHIVE_ALLOW_REMOVALS"] = "1"
    if not use_inbox(inbox):
        return 2
    start = time.perf_counter()
    try:
        plan = plan_decades(decades)
    except (ValueError, FileNotFoundError) as exc:  # unknown decade, no inbox
        print(exc, file=sys.stderr)
        return 2
    planned, n_items = plan.decades, plan.items
    if not planned:
        print(f"nothing to run: no media in the inbox ({n_items} items) and no catalogued decades")
        return 0
    print(f"{n_items} media items in the inbox; running decades {', '.join(planned)}")
    inputs = None if rerun else decade_inputs(plan.digests, planned)
    runs = run_decades(planned, trigger="archive-pipeline run", inputs=inputs)
    failed = [r.decade for r in runs if not r.success]
    checked = [r.decade for r in runs if r.success and r.failed_checks]
    skipped = sum(r.skipped for r in runs)
    print(
        f"{len(runs)} decade(s) in {time.perf_counter() - start:.1f} s"
        + (f" ({skipped} unchanged, not run again)" if skipped else "")
        + (f"; runs FAILED for {failed}" if failed else "; all runs succeeded")
        + (f"; checks did not pass for {checked} (above)" if checked else "")
        + f". Tables: `archive-pipeline summary`; runs and checks: {ui_hint()}."
    )
    return 1 if failed else 0


def ui_hint() -> str:
    """The `make ui` command that opens the Dagster UI on what this command used: the
    variables that differ from the Makefile's defaults (instance, inbox, warehouse)."""
    from archive_pipeline.config import paths, settings

    repo = Path(__file__).resolve().parents[2]
    defaults = {
        settings.ARCHIVE_HOME.env: repo / ".archive",
        settings.DAGSTER_HOME.env: paths.dagster_home(),
        settings.INBOX.env: paths.inbox(),
        settings.WAREHOUSE.env: paths.warehouse(),
    }
    given = []
    for env, default in defaults.items():
        value = os.environ.get(env, "").strip()
        if value and ("://" in value or Path(value).resolve() != default.resolve()):
            given.append(f"{env}={value if '://' in value else Path(value).resolve()}")
    return f"`{' '.join([*given, 'make ui'])}`"


def _export(warehouse, media: str, fmt: str, out: Path | None) -> int:
    """Export one media item's diarised segments or speaker turns."""
    from archive_pipeline.ops.exports import to_rttm, to_srt, to_webvtt

    catalog = warehouse.read("media_catalog").to_pylist()
    matches = {
        r["media_id"]: r
        for r in catalog
        if media in (r["media_id"], r["uri"], r["store_key"]) or media in r["store_key"]
    }
    if len(matches) != 1:
        found = sorted(r["store_key"] for r in matches.values())
        print(f"{media!r} matches {len(matches)} media items {found[:10]}", file=sys.stderr)
        return 2
    ((media_id, row),) = matches.items()
    scope = {"decade": row["decade"]}
    if fmt == "rttm":
        turns = [
            t
            for t in warehouse.read("speaker_turns", scope).to_pylist()
            if t["media_id"] == media_id
        ]
        text = to_rttm(turns, file_id=Path(row["store_key"]).stem)
    else:
        segments = [
            s
            for s in warehouse.read("diarised_segments", scope).to_pylist()
            if s["media_id"] == media_id
        ]
        text = to_srt(segments) if fmt == "srt" else to_webvtt(segments)
    if out:
        out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
