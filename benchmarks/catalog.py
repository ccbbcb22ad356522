"""Benchmark the catalog path against `sha256sum` + `ffprobe` run directly on the same files.

Builds an inbox of N copies of the real media in ../shared/media (or the generated demo media),
then measures, in one run, median of --repeats:

- baseline_seq: `sha256sum` and `ffprobe` as subprocesses, one file after another;
- baseline_par: the same with --workers files at a time (the stage's parallelism);
- stage_inline: CatalogStage.process per file in this process (hash + probe, no Ray, no Lance);
- pipeline_cold: scan_inventory + catalog_decade on Ray (--workers actors) + Lance commit,
  into an empty warehouse;
- pipeline_warm: the same again on the unchanged inbox (every item a cache hit).

Prints files/s, MB/s and ratios against baseline_par, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from archive_pipeline.core.compute import InlineCompute, StageResources  # noqa: E402
from archive_pipeline.core.inventory import scan_inventory  # noqa: E402
from archive_pipeline.core.local_store import LocalStore  # noqa: E402
from archive_pipeline.core.media import FFPROBE_ARGS, is_media_key  # noqa: E402
from archive_pipeline.core.ray_runtime import RayRuntime  # noqa: E402
from archive_pipeline.core.warehouse import Warehouse  # noqa: E402
from archive_pipeline.stages.catalog import CatalogStage, catalog_decade  # noqa: E402


def build_inbox(inbox: Path, copies: int, shared: Path) -> list[Path]:
    """Copy every media file of `shared` `copies` times into inbox/copyNN/ (one decade folder)."""
    sources = [p for p in sorted(shared.rglob("*")) if p.is_file() and is_media_key(p.name)]
    if not sources:
        from archive_pipeline.demo.build import build_demo_inbox

        build_demo_inbox(inbox / "_demo")
        sources = [
            p
            for p in sorted((inbox / "_demo").rglob("*"))
            if is_media_key(p.name) and p.stat().st_size
        ]
    files = []
    for i in range(copies):
        for src in sources:
            dst = inbox / "1980s" / f"copy{i:02d}" / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            files.append(dst)
    if (inbox / "_demo").exists():
        shutil.rmtree(inbox / "_demo")
    return files


def baseline_one(path: Path) -> None:
    subprocess.run(["sha256sum", str(path)], check=True, capture_output=True)
    subprocess.run(
        ["ffprobe", *FFPROBE_ARGS, str(path)],
        check=True,
        capture_output=True,
    )


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shared-media", type=Path, default=REPO.parent / "shared" / "media")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 copy, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.copies, args.repeats = 1, 1

    with tempfile.TemporaryDirectory(prefix="bench-catalog-") as tmp_name:
        tmp = Path(tmp_name)
        files = build_inbox(tmp / "inbox", args.copies, args.shared_media)
        n, mb = len(files), sum(f.stat().st_size for f in files) / 1e6
        print(
            f"inbox: {n} files, {mb:.1f} MB ({args.copies} copies), {args.workers} workers, "
            f"median of {args.repeats}"
        )
        store = LocalStore(str(tmp / "inbox"))
        t0 = time.perf_counter()
        runtime = RayRuntime("local", num_cpus=args.workers)
        runtime.ensure_started()
        ray_start = time.perf_counter() - t0
        resources = StageResources(num_cpus=1)
        times: dict[str, list[float]] = {
            k: []
            for k in (
                "baseline_seq",
                "baseline_par",
                "stage_inline",
                "pipeline_cold",
                "pipeline_warm",
            )
        }
        try:
            for r in range(args.repeats):
                times["baseline_seq"].append(timed(lambda: [baseline_one(f) for f in files]))
                with ThreadPoolExecutor(args.workers) as pool:
                    times["baseline_par"].append(timed(lambda: list(pool.map(baseline_one, files))))
                items = scan_inventory(store).for_decade("1980s")
                stage = CatalogStage(store)
                times["stage_inline"].append(
                    timed(lambda s, i: [s.process(x) for x in i], stage, items)
                )
                wh = Warehouse(str(tmp / f"wh{r}"))

                def pipeline(wh: Warehouse):
                    inventory = scan_inventory(store)
                    report = catalog_decade(
                        decade="1980s",
                        items=inventory.for_decade("1980s"),
                        store=store,
                        warehouse=wh,
                        compute=runtime,
                        resources=resources,
                    )
                    assert report.n_failed == 0 and report.write.rows == n
                    return report

                times["pipeline_cold"].append(timed(pipeline, wh))
                times["pipeline_warm"].append(timed(pipeline, wh))
            inline = InlineCompute()  # sanity: the inline path gives the same rows
            check = catalog_decade(
                decade="1980s",
                items=scan_inventory(store).for_decade("1980s"),
                store=store,
                warehouse=Warehouse(str(tmp / "whi")),
                compute=inline,
            )
            assert check.write.rows == n
        finally:
            runtime.shutdown()

    med = {k: statistics.median(v) for k, v in times.items()}
    ref = med["baseline_par"]
    print(f"\n{'path':<15}{'median s':>10}{'files/s':>10}{'MB/s':>9}{'vs baseline_par':>17}")
    for name, seconds in med.items():
        print(
            f"{name:<15}{seconds:>10.3f}{n / seconds:>10.1f}{mb / seconds:>9.1f}"
            f"{ref / seconds:>16.2f}x"
        )
    print(f"\nRay start (once per run, not in the figures): {ray_start:.1f} s")
    print("ratio > 1 means faster than running sha256sum + ffprobe directly in parallel")
    result = {
        "benchmark": "catalog",
        "files": n,
        "mb": round(mb, 2),
        "workers": args.workers,
        "repeats": args.repeats,
        "ray_start_s": round(ray_start, 2),
        **{f"{k}_s": round(v, 4) for k, v in med.items()},
        **{f"{k}_files_per_s": round(n / v, 2) for k, v in med.items()},
        **{f"{k}_mb_per_s": round(mb / v, 2) for k, v in med.items()},
        "pipeline_cold_vs_baseline_par": round(ref / med["pipeline_cold"], 3),
        "pipeline_warm_vs_baseline_par": round(ref / med["pipeline_warm"], 3),
        "stage_inline_vs_baseline_seq": round(med["baseline_seq"] / med["stage_inline"], 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
