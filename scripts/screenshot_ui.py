"""Screenshots of the Dagster UI with headless Chromium: an asset's Overview with its columns,
a decade's checks, and a run log with per-item progress.

Starts `dagster dev` (webserver + daemon) on 127.0.0.1 (a free port) against $DAGSTER_HOME
(`make screenshot` uses the `make demo` instance), dismisses the community pop-up once
(GraphQL `setNuxSeen`), launches a run when the instance has none, takes the screenshots and
stops the servers by PID. Screenshots are not committed (screenshots/ is git-ignored).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from archive_pipeline.ops.ui import DagsterDev

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def shoot(chromium: str, url: str, out: Path, *, height: int = 1100) -> None:
    """One headless Chromium screenshot of `url`."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", f"--user-data-dir={profile}", f"--window-size=1600,{height}",
             "--virtual-time-budget=25000", f"--screenshot={out.resolve()}", url],
            check=True, capture_output=True, timeout=180,
        )  # fmt: skip
    print(f"{out}: {url}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out-dir", type=Path, default=REPO / "screenshots")
    parser.add_argument("--asset", default="transcripts", help="asset whose columns to show")
    parser.add_argument("--decade", default="1990s", help="decade whose checks to show")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("chromium not found: `make screenshot` installs Debian's chromium", file=sys.stderr)
        return 1
    args.out_dir.mkdir(parents=True, exist_ok=True)
    home = Path(os.environ.get("DAGSTER_HOME") or REPO / ".archive/dagster_home")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    with DagsterDev(port=free_port(), env=env, log_path=args.out_dir / "dagster_dev.log") as dev:
        dev.set_nux_seen()
        runs = [r for r in dev.runs() if r["status"] == "SUCCESS"]
        if runs:
            run_id = runs[0]["runId"]
        else:  # a fresh instance: materialise the catalogue of one decade first
            run_id = dev.materialize(["media_catalog"], partition=args.decade)
            dev.wait_for_run(run_id)
        shoot(chromium, f"{dev.base}/assets/{args.asset}", args.out_dir / "asset_columns.png")
        shoot(
            chromium,
            f"{dev.base}/assets/media_catalog?view=checks&partition={args.decade}",
            args.out_dir / "decade_checks.png",
        )
        # the run log filtered to one step: its per-item progress lines
        shoot(
            chromium,
            f"{dev.base}/runs/{run_id}?logs=step%3A{args.asset}",
            args.out_dir / "run_progress.png",
        )
    print(f"(DAGSTER_HOME={home})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
