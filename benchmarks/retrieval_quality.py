"""Cross-lingual retrieval quality of the offline text embedders, measured in the same run.

On 20 English sentences with their German translations and a short query in each language
(benchmarks/data/en_de_pairs.json, written for this benchmark), for each offline text model
(`use-multilingual`, the default, and `minilm`, all-MiniLM-L6-v2):
- sentence R@1 both ways: a German sentence against the 20 English ones (its translation must
  rank first), and back;
- mixed pool: each short query (English and German) against all 40 sentences; its pair's two
  sentences are relevant: recall@2 (both in the top 2), recall@5 of the other-language one, MRR
  of the first relevant one;
- texts per second embedding the 40 sentences (median of --repeats);
- the relevance floor: the share of relevant (query, its two sentences) and irrelevant pairs
  whose cosine similarity reaches each floor (how ARCHIVE_SEARCH_MIN_SIMILARITY was chosen).

With --warehouse (the demo's, after `make demo`: .archive/warehouse), cross-lingual search
over the demo archive through `Searcher.search` for each mode (text, vector, hybrid): each
query of DEMO_QUERIES (10, five German and five English, each about a sentence spoken in the
other language in the demo) is a hit at k when one of the top k hits is that sentence (its
file, the language it was spoken in, a word of it); recall@1 and recall@5 per mode and per
query language. Full-text search cannot cross languages (no shared words): its figure is the
floor the vector space lifts.

Prints a table and ends with one JSON line (with each figure's ratio to MiniLM, the baseline).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PAIRS = REPO / "benchmarks" / "data" / "en_de_pairs.json"
# (query, language of the query, the demo file spoken in the other language, that language, a
# word of the target sentence); written from the demo's scripts (archive_pipeline/demo/build.py)
DEMO_QUERIES = [
    ("Menschen an der Grenze", "de", "berlin_mauerfall_1989.wav", "en", "border"),
    ("Die Straßen waren am Morgen voller Leute", "de", "berlin_mauerfall_1989.wav", "en",
     "streets"),
    ("Der Stadtrat genehmigt eine neue Straßenbahnlinie", "de", "news", "en", "tram"),
    ("Fischer melden einen Rekordfang", "de", "news", "en", "catch"),
    ("Der Fluss war im Winter zugefroren", "de", "harbour_interview.wav", "en", "river"),
    ("crowds crossing the bridge into West Berlin", "en", "berlin_mauerfall_1989.wav", "de",
     "brücke"),
    ("thank you for the interview, goodbye", "en", "berlin_mauerfall_1989.wav", "de", "dank"),
    ("good evening from Berlin, tonight our guest talks about the night the wall fell", "en",
     "berlin_mauerfall_1989.wav", "de", "abend"),
    ("the tram runs through the city centre again from Monday", "en",
     "berliner_rundfunk_1976.flac", "de", "straßenbahn"),
    ("music and conversations everywhere in the streets the next morning", "en",
     "berliner_rundfunk_1976.flac", "de", "musik"),
]  # fmt: skip


def ranks(similarity: np.ndarray) -> np.ndarray:
    """For each query row, the rank (1 = first) of every column."""
    order = np.argsort(-similarity, axis=1)
    out = np.empty_like(order)
    rows = np.arange(similarity.shape[0])[:, None]
    out[rows, order] = np.arange(1, similarity.shape[1] + 1)
    return out


def evaluate(embed, pairs: list[dict]) -> dict:
    """The figures of one embedder (a function of a list of texts to unit vectors)."""
    n = len(pairs)
    english = embed([p["en"] for p in pairs])
    german = embed([p["de"] for p in pairs])
    de_to_en = ranks(german @ english.T)
    en_to_de = ranks(english @ german.T)
    figures = {
        "sentence_r1_de_to_en": float(np.mean(np.diag(de_to_en) == 1)),
        "sentence_r1_en_to_de": float(np.mean(np.diag(en_to_de) == 1)),
    }
    pool = np.concatenate([english, german])  # rows 0..n-1 English, n..2n-1 German
    for language, other in (("en", n), ("de", 0)):
        queries = embed([p[f"q_{language}"] for p in pairs])
        rank = ranks(queries @ pool.T)
        same = np.array([rank[i, i + (0 if language == "en" else n)] for i in range(n)])
        cross = np.array([rank[i, i + other] for i in range(n)])
        first = np.minimum(same, cross)
        figures[f"query_{language}_recall@2_both"] = float(np.mean(np.maximum(same, cross) <= 2))
        figures[f"query_{language}_other_language_recall@5"] = float(np.mean(cross <= 5))
        figures[f"query_{language}_mrr"] = float(np.mean(1.0 / first))
    return figures


FLOORS = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4)


def floor_table(embed, pairs: list[dict]) -> dict:
    """Cosine similarity of each short query (both languages) to its two sentences (relevant)
    and to the other sentences (irrelevant): the share of each kept at each relevance floor
    (how ARCHIVE_SEARCH_MIN_SIMILARITY's default was chosen)."""
    n = len(pairs)
    pool = np.concatenate([embed([p["en"] for p in pairs]), embed([p["de"] for p in pairs])])
    relevant, irrelevant = [], []
    for language in ("en", "de"):
        similarity = embed([p[f"q_{language}"] for p in pairs]) @ pool.T
        mine = np.zeros_like(similarity, dtype=bool)
        mine[np.arange(n), np.arange(n)] = mine[np.arange(n), np.arange(n) + n] = True
        relevant.append(similarity[mine])
        irrelevant.append(similarity[~mine])
    relevant, irrelevant = np.concatenate(relevant), np.concatenate(irrelevant)
    return {
        f"{floor:.2f}": {
            "relevant_kept": round(float(np.mean(relevant >= floor)), 3),
            "irrelevant_kept": round(float(np.mean(irrelevant >= floor)), 3),
        }
        for floor in FLOORS
    }


def demo_search(warehouse_root: Path, limit: int = 5) -> dict:
    """recall@1 / recall@5 of DEMO_QUERIES per search mode over the demo warehouse."""
    from archive_pipeline.core.warehouse import Warehouse
    from archive_pipeline.search.query import Searcher, configured_clip

    searcher = Searcher(Warehouse(str(warehouse_root)), clip=configured_clip())
    out: dict = {"queries": len(DEMO_QUERIES)}
    for mode in ("text", "vector", "hybrid"):
        found: dict[str, list[int | None]] = {"de": [], "en": []}
        for query, asked_in, where, spoken_in, word in DEMO_QUERIES:
            hits = searcher.search(query=query, mode=mode, limit=limit, thumbnails=False).hits
            rank = next(
                (
                    i + 1
                    for i, h in enumerate(hits)
                    if where in h.uri and h.language == spoken_in and word in h.text.lower()
                ),
                None,
            )
            found[asked_in].append(rank)
            print(f"{mode:<7} {query[:50]:<50} -> rank {rank}")
        ranks_all = found["de"] + found["en"]
        figures = {
            "recall_at_1": sum(r == 1 for r in ranks_all) / len(ranks_all),
            "recall_at_5": sum(r is not None for r in ranks_all) / len(ranks_all),
        }
        for lang, ranks_lang in found.items():
            figures[f"recall_at_5_{lang}_queries"] = sum(r is not None for r in ranks_lang) / len(
                ranks_lang
            )
        out[mode] = {k: round(v, 3) for k, v in figures.items()}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--warehouse", type=Path, help="the demo's warehouse: add cross-lingual demo search"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 1

    from archive_pipeline.core.embedders import TEXT_MODELS, ClipSettings, TextEmbedder

    pairs = json.loads(PAIRS.read_text())["pairs"]
    texts = [p["en"] for p in pairs] + [p["de"] for p in pairs]
    out: dict = {"benchmark": "retrieval_quality", "pairs": len(pairs), "models": {}}
    for name in TEXT_MODELS:
        embedder = TextEmbedder(ClipSettings(text_model=name), threads=args.threads)
        figures = evaluate(embedder.embed, pairs)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            embedder.embed(texts)
            times.append(time.perf_counter() - start)
        figures["texts_per_s"] = round(len(texts) / statistics.median(times), 1)
        figures = {k: round(v, 3) for k, v in figures.items()}
        out["models"][name] = {"model_id": embedder.model_id, **figures}
        print(f"{name:<17} " + "  ".join(f"{k} {v}" for k, v in figures.items()), flush=True)
        out.setdefault("relevance_floor", {})[name] = floors = floor_table(embedder.embed, pairs)
        print(f"{'':<17} relevance floor -> share kept: {floors}", flush=True)
    base = out["models"]["minilm"]
    out["over_minilm"] = {
        name: {
            k: round(v / base[k], 3) if base[k] else None
            for k, v in figures.items()
            if k != "model_id"
        }
        for name, figures in out["models"].items()
        if name != "minilm"
    }
    if args.warehouse:
        out["demo_search"] = demo_search(args.warehouse)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
