"""`archive-pipeline` command line: demo, summary, maintenance."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `archive-pipeline` command."""
    parser = argparse.ArgumentParser(prog="archive-pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
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
    build = sub.add_parser("build-demo-inbox", help="write the demo archive into a folder")
    build.add_argument("inbox", type=Path)
    build.add_argument("--shared-media", type=Path, default=None)
    args = parser.parse_args(argv)

    if args.command == "demo":
        from archive_pipeline.demo.run import run_demo

        shared = args.shared_media if args.shared_media and args.shared_media.is_dir() else None
        return run_demo(shared_media=shared, partitions=args.partition)
    from archive_pipeline.defs.resources import build_warehouse

    if args.command == "summary":
        from archive_pipeline.report import catalog_listing, summarise

        warehouse = build_warehouse().get_warehouse()
        print(summarise(warehouse))
        print(catalog_listing(warehouse))
    elif args.command == "maintain":
        retention = (
            dt.timedelta(minutes=args.retention_minutes)
            if args.retention_minutes is not None
            else None
        )
        for result in build_warehouse().get_warehouse().maintain_all(retention=retention):
            print(result)
    elif args.command == "build-demo-inbox":
        from archive_pipeline.demo.build import build_demo_inbox

        for item in build_demo_inbox(args.inbox, shared_media=args.shared_media):
            print(item.decade, item.key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
