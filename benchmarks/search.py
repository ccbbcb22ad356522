"""Benchmark search over a synthetic search_documents of --rows rows (default 1,000,000).

Rows: texts of realistic length (speech segments ~18 words, lognormal; keyframe documents
shorter) drawn from a Zipf-distributed vocabulary; --dim (384) unit vectors around 2,000
topic centres; 13 decades with more rows in recent ones; 80% speech, 20% keyframes. Written
with `Warehouse.replace` per decade (the pipeline's write path), then indexed as the asset does.

Figures, in one run: write and index build times (FTS, BITMAP, vector); p50/p95 latency of
text, vector and hybrid queries through `Searcher.search` (query vectors precomputed: model
time is not search time), without and with a decade filter; recall@10 of the vector index
against exact search; the same queries against a brute-force baseline in the same run (NumPy
matrix product over all vectors in memory, polars substring scan for text, RRF in Python for
hybrid) and the ratio baseline / Lance. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from archive_pipeline.core.decades import PARTITION_KEYS  # noqa: E402

DECADES = [d for d in PARTITION_KEYS if d != "undated"]  # 13 decades


def vocabulary(rng: np.random.Generator, size: int) -> np.ndarray:
    """Pronounceable pseudo-words (no stop words): 'talomer', 'venkiru', ..."""
    onsets = [*"bdfgklmnprstvz", "br", "tr", "st", "ch", "sh", "pl", "gr"]
    vowels = [*"aeiou", "ai", "ou", "ea"]
    words: set[str] = set()
    while len(words) < size:
        syllables = rng.integers(2, 4)
        words.add(
            "".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(syllables))
            + rng.choice(["", "n", "r", "s", "m"])
        )
    return np.array(sorted(words))


def texts(rng, words: np.ndarray, n: int, median_words: float) -> list[str]:
    """n texts with lognormal lengths, words Zipf-distributed over the vocabulary."""
    lengths = np.clip(rng.lognormal(np.log(median_words), 0.6, n).astype(int), 2, 150)
    ranks = np.minimum(rng.zipf(1.15, lengths.sum()) - 1, len(words) - 1)
    tokens = words[ranks]
    out, at = [], 0
    for length in lengths:
        out.append(" ".join(tokens[at : at + length]))
        at += length
    return out


def make_rows(args, rng, words, centres, decade: str, n: int, first: int):
    """An Arrow table of n search_documents rows of one decade, and their vectors."""
    import pyarrow as pa

    from archive_pipeline.core.ids import row_id

    kinds = np.where(rng.random(n) < 0.8, "speech", "keyframe")
    speech = texts(rng, words, n, 18)
    frames = texts(rng, words, n, 6)
    topic = rng.integers(0, len(centres), n)
    vectors = centres[topic] + rng.normal(0, 0.06, (n, args.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    numbers = np.arange(first, first + n)
    start = rng.uniform(0, 3600, n)
    media = [f"m{i // 200}" for i in numbers]
    columns = {
        "row_id": [row_id("bench", decade, str(i)) for i in numbers],
        "decade": [decade] * n,
        "media_id": media,
        "model_id": [args.model_id] * n,
        "kind": kinds.tolist(),
        "uri": [f"s3://archive/{decade}/{m}.mp4" for m in media],
        "source_id": [f"s{i}" for i in numbers],
        "start_s": start,
        "end_s": start + 5.0,
        "time_s": start,
        "text": [s if k == "speech" else f for s, f, k in zip(speech, frames, kinds, strict=True)],
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), args.dim),
    }
    # as assembled documents are: each text in its language's full-text column (the searcher
    # matches those; a table without them falls back to `text`), a fifth of them German
    german = rng.random(n) < 0.2
    columns["language"] = np.where(german, "de", "en").tolist()
    columns["text_en"] = [None if g else t for t, g in zip(columns["text"], german, strict=True)]
    columns["text_de"] = [t if g else None for t, g in zip(columns["text"], german, strict=True)]
    return pa.table(columns), vectors


def build(args, rng, wh) -> dict:
    """Write the synthetic rows decade by decade, then build the indexes; returns timings."""
    import pyarrow as pa

    from archive_pipeline.contract.schemas import TABLES
    from archive_pipeline.search.indexes import TABLE, IndexSettings, ensure_indexes

    words = vocabulary(rng, args.vocabulary)
    centres = rng.normal(size=(2000, args.dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = np.linspace(1, 3, len(DECADES))
    sizes = np.floor(weights / weights.sum() * args.rows).astype(int)
    sizes[-1] += args.rows - sizes.sum()
    schema = TABLES[TABLE].schema_for(args.dim)
    write_s = 0.0
    first = 0
    for decade, n in zip(DECADES, sizes, strict=True):
        rows, _ = make_rows(args, rng, words, centres, decade, int(n), first)
        for field in schema:  # the contract's other columns, null
            if field.name not in rows.column_names:
                rows = rows.append_column(field, pa.nulls(rows.num_rows, field.type))
        start = time.perf_counter()
        wh.replace(TABLE, rows, scope={"decade": decade}, dim=args.dim)
        write_s += time.perf_counter() - start
        first += rows.num_rows
        print(f"  wrote {decade}: {rows.num_rows} rows", flush=True)
    print(f"wrote {args.rows} rows in {write_s:.1f} s (13 decade commits)", flush=True)
    table = wh.table(TABLE)
    start = time.perf_counter()
    ensure_indexes(table, IndexSettings(vector_min_rows=args.rows + 1))  # FTS + BITMAPs only
    builds = {"fts_and_bitmaps_s": round(time.perf_counter() - start, 1)}
    start = time.perf_counter()
    indexes = ensure_indexes(
        table, IndexSettings(vector_min_rows=1, vector_index=args.vector_index)
    )
    builds[f"vector_{args.vector_index.lower()}_s"] = round(time.perf_counter() - start, 1)
    print(f"index builds: {builds}", flush=True)
    return {"write_s": round(write_s, 1), "index_build": builds, "indexes": indexes}


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50 and p95 in milliseconds."""
    ms = np.array(samples) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
    }


def timed(fn, queries) -> tuple[list[float], list]:
    times, outs = [], []
    for query in queries:
        start = time.perf_counter()
        outs.append(fn(query))
        times.append(time.perf_counter() - start)
    return times, outs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--vocabulary", type=int, default=30_000)
    parser.add_argument("--vector-index", default="IVF_HNSW_SQ")
    parser.add_argument("--nprobes", type=int, default=20)
    parser.add_argument("--refine-factor", type=int, default=4)
    parser.add_argument("--ef", type=int, default=160, help="HNSW search breadth")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the table here")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="query the table an earlier run left in --workdir (skips writing and index builds)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 5,000 rows, 5 queries (no figures)"
    )
    args = parser.parse_args()
    if args.quick:
        args.rows, args.queries, args.vocabulary = 5_000, 5, 2_000

    import polars as pl

    from archive_pipeline.core.embedders import ClipSettings, text_model_id
    from archive_pipeline.core.warehouse import Warehouse
    from archive_pipeline.search.indexes import TABLE
    from archive_pipeline.search.query import Searcher, reciprocal_rank_fusion

    args.model_id = text_model_id(ClipSettings())
    rng = np.random.default_rng(7)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="search_bench_"))
    root = workdir / "warehouse"
    figures: dict = {"benchmark": "search", "rows": args.rows, "dim": args.dim}
    reuse = args.reuse and (root / f"{TABLE}.lance").exists()
    if not reuse:
        shutil.rmtree(root, ignore_errors=True)
    wh = Warehouse(str(root))
    if reuse:
        figures["reused_table"] = str(root)  # no write or build figures in this run
        print(f"reusing {root} (written and indexed by an earlier run)", flush=True)
    else:
        figures |= build(args, rng, wh)
    columns = wh.table(TABLE).to_lance().to_table(columns=["row_id", "decade", "text", "vector"])
    ids = columns.column("row_id").to_numpy(zero_copy_only=False)
    decades = columns.column("decade").to_numpy(zero_copy_only=False)
    all_texts = columns.column("text").to_pylist()
    vectors = columns.column("vector").combine_chunks().flatten().to_numpy()
    vectors = vectors.reshape(-1, args.dim)
    del columns
    args.rows = len(ids)

    searcher = Searcher(wh, nprobes=args.nprobes, ef=args.ef, refine_factor=args.refine_factor)
    # queries: 2-3 mid-frequency words taken from random documents; vectors near random rows
    picks = rng.integers(0, args.rows, args.queries)
    text_queries = []
    for i in picks:
        doc_words = [w for w in all_texts[i].split() if len(w) > 4]
        text_queries.append(" ".join(doc_words[:3]) or all_texts[i].split()[0])
    noise = rng.normal(0, 0.05, (args.queries, args.dim)).astype(np.float32)
    query_vectors = vectors[rng.integers(0, args.rows, args.queries)] + noise
    query_vectors /= np.linalg.norm(query_vectors, axis=1, keepdims=True)
    query_decades = [str(decades[i]) for i in picks]
    queries = list(zip(text_queries, query_vectors, query_decades, strict=True))

    def lance(mode: str, filtered: bool):
        def run(query):
            text, vector, decade = query
            return searcher.search(
                query=text,
                mode=mode,
                vector=vector,
                decades=[decade] if filtered else None,
                limit=10,
                temporal=False,
                thumbnails=False,
            )

        return run

    frame = pl.DataFrame({"row_id": ids, "decade": decades, "text": all_texts})
    by_decade = {d: np.flatnonzero(decades == d) for d in DECADES}

    def numpy_vector(vector, decade, k=10):
        rows = by_decade[decade] if decade else None
        matrix = vectors[rows] if rows is not None else vectors
        scores = matrix @ vector
        top = np.argpartition(-scores, k)[:k]
        top = top[np.argsort(-scores[top])]
        return list(ids[rows[top]] if rows is not None else ids[top])

    def polars_text(text, decade, k=10):
        terms = text.lower().split()
        scan = frame.filter(pl.col("decade") == decade) if decade else frame
        hits = scan.with_columns(
            pl.sum_horizontal([pl.col("text").str.contains(t, literal=True) for t in terms]).alias(
                "m"
            )
        ).filter(pl.col("m") > 0)
        return hits.sort("m", descending=True).head(k)["row_id"].to_list()

    def baseline(mode: str, filtered: bool):
        def run(query):
            text, vector, decade = query
            decade = decade if filtered else None
            if mode == "vector":
                return numpy_vector(vector, decade)
            if mode == "text":
                return polars_text(text, decade)
            fused = reciprocal_rank_fusion(
                {"text": polars_text(text, decade, 40), "vector": numpy_vector(vector, decade, 40)}
            )
            return [item for item, _, _ in fused[:10]]

        return run

    for mode in ("text", "vector", "hybrid"):
        lance(mode, False)(queries[0])  # warm caches and the model-id check
    latency: dict = {}
    recall = {}
    for filtered in (False, True):
        for mode in ("text", "vector", "hybrid"):
            name = f"{mode}{'_decade' if filtered else ''}"
            lance_times, results = timed(lance(mode, filtered), queries)
            base_times, base_results = timed(baseline(mode, filtered), queries)
            lance_p = percentiles(lance_times)
            base_p = percentiles(base_times)
            latency[name] = {
                "lance": lance_p,
                "baseline": base_p,
                "ratio_p50": round(base_p["p50_ms"] / lance_p["p50_ms"], 2),
            }
            if mode == "vector":
                found = [
                    len({h.row_id for h in r.hits} & set(exact)) / 10
                    for r, exact in zip(results, base_results, strict=True)
                ]
                recall[name] = round(statistics.mean(found), 3)
            if filtered:
                assert all(
                    h.decade == q[2] for r, q in zip(results, queries, strict=True) for h in r.hits
                )
            print(
                f"{name:<15} lance p50 {lance_p['p50_ms']:8.2f} ms  p95 {lance_p['p95_ms']:8.2f} ms"
                f" | baseline p50 {base_p['p50_ms']:9.2f} ms  p95 {base_p['p95_ms']:9.2f} ms"
                f" | baseline/lance {latency[name]['ratio_p50']:6.2f}x",
                flush=True,
            )
    figures["latency"] = latency
    figures["vector_recall_at_10_vs_exact"] = recall
    figures["search_params"] = {
        "nprobes": args.nprobes,
        "ef": args.ef,
        "refine_factor": args.refine_factor,
    }
    print(f"vector recall@10 against exact search: {recall}")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
