"""Search relevance on the demo archive: recall@5 and MRR of the labelled queries (and of the
paraphrases, which share no words with their targets) in
archive_pipeline_tests/data/search_queries.json, for text, vector and hybrid search; then the
relevance floor (ARCHIVE_SEARCH_MIN_SIMILARITY) against none in the same run: recall and MRR of
the paraphrases, and hits returned (of 10) for them and for off-topic queries about nothing in the
demo (where every hit is noise).

Needs a materialised demo warehouse (`make demo`; ARCHIVE_HOME or --warehouse). Ends with one
JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
QUERIES = REPO / "archive_pipeline_tests" / "data" / "search_queries.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    home = Path(os.environ.get("ARCHIVE_HOME") or REPO / ".archive")
    parser.add_argument(
        "--warehouse", default=os.environ.get("ARCHIVE_WAREHOUSE") or home / "warehouse"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: the first 3 queries of each set"
    )
    args = parser.parse_args()

    from archive_pipeline.core.warehouse import Warehouse
    from archive_pipeline.quality import evaluate_search
    from archive_pipeline.search.query import Searcher, configured_clip

    labelled = json.loads(QUERIES.read_text())
    searcher = Searcher(Warehouse(str(args.warehouse)), clip=configured_clip())
    figures = {"benchmark": "search_quality", "model": searcher.text_model_id}
    for name in ("queries", "paraphrases"):
        queries = labelled[name][:3] if args.quick else labelled[name]
        figures[name] = {"n": len(queries)}
        for mode in ("text", "vector", "hybrid"):
            scores = evaluate_search(searcher, queries, mode=mode)
            figures[name][mode] = {
                k: round(v, 3) if isinstance(v, float) else v for k, v in scores.items()
            }
            missed = [
                q["query"] for q, r in zip(queries, scores["ranks"], strict=True) if not r or r > 5
            ]
            print(
                f"{name:<11} {mode:<7} recall@5 {scores['recall@5']:.3f}  MRR {scores['mrr']:.3f}",
                f" missed: {missed}",
            )
    figures["floor"] = floor_figures(searcher, labelled["paraphrases"])
    print(json.dumps(figures))
    return 0


# about nothing in the demo archive: every hit returned for these is noise
OFF_TOPIC = [
    "volcano eruption in Iceland",
    "chess championship final moves",
    "recipe for apple strudel",
    "the stock market crashed on Monday",
    "Vulkanausbruch auf Island",
    "Rezept für Apfelstrudel",
    "Schachweltmeisterschaft im Fernsehen",
    "astronauts land on the moon",
]


def floor_figures(searcher, paraphrases: list[dict]) -> dict:
    """The relevance floor against none (min_similarity -1), same searcher and queries."""
    from archive_pipeline.quality import evaluate_search

    floor = searcher.min_similarity
    out: dict = {"min_similarity": floor}
    for label, value in (("floor", floor), ("no_floor", -1.0)):
        searcher.min_similarity = value
        for mode in ("vector", "hybrid"):
            scores = evaluate_search(searcher, paraphrases, mode=mode)
            hits = [
                len(searcher.search(query=q["query"], mode=mode, thumbnails=False).hits)
                for q in paraphrases
            ]
            noise = [
                len(searcher.search(query=q, mode=mode, thumbnails=False).hits) for q in OFF_TOPIC
            ]
            out[f"{mode}_{label}"] = {
                "paraphrase_recall@5": round(scores["recall@5"], 3),
                "paraphrase_mrr": round(scores["mrr"], 3),
                "paraphrase_hits_mean": round(sum(hits) / len(hits), 1),
                "off_topic_hits_mean": round(sum(noise) / len(noise), 1),
            }
            print(f"{mode:<7} {label:<9} {out[f'{mode}_{label}']}")
    searcher.min_similarity = floor
    return out


if __name__ == "__main__":
    sys.exit(main())
