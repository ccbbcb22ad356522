"""How ranked lists become one ranking: the query's syntax applied to every list, fragments
after documents with words to read, the relevance floor on vector lists, and reciprocal rank
fusion (ties ordered by the retrievers' own scores)."""

from __future__ import annotations

from collections.abc import Callable

from archive_pipeline.search.syntax import ParsedQuery, satisfies, stems, words

RRF_K = 60  # reciprocal rank fusion constant (Cormack et al. 2009; LanceDB's RRFReranker default)
VECTOR_LISTS = ("vector", "image")  # ranked lists the relevance floor applies to

Ranked = list[tuple[dict, float, float, dict[str, int]]]  # (row, score, raw score, list ranks)


def reciprocal_rank_fusion(
    ranked: dict[str, list[str]], *, k: int = RRF_K
) -> list[tuple[str, float, dict[str, int]]]:
    """Fuse ranked id lists: score = sum over lists of 1 / (k + rank). Returns (id, score,
    {list: rank}) best first; ties keep the order of first appearance."""
    scores: dict[str, float] = {}
    ranks: dict[str, dict[str, int]] = {}
    for name, ids in ranked.items():
        for rank, item in enumerate(ids, 1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
            ranks.setdefault(item, {})[name] = rank
    order = sorted(scores, key=lambda item: -scores[item])
    return [(item, scores[item], ranks[item]) for item in order]


SHORT_DOCUMENT_WORDS = 3  # fewer words: a fragment ("Hmm", "Und"), ranked after sentences


def screened(rows: list[dict], parsed: ParsedQuery, name: str) -> list[dict]:
    """A ranked list with the query's syntax applied to every retriever (a vector hit must hold
    the required phrases and none of the excluded terms too), and fragments of fewer than
    SHORT_DOCUMENT_WORDS words after the documents with words to read (BM25's length
    normalisation and a short text's vague vector otherwise put "Hmm" first), unless the
    fragment holds every word of the query. Title matches are left as they are."""
    if name == "title":
        return rows
    if parsed.has_operators:
        rows = [row for row in rows if satisfies(row["text"] or "", parsed)]
    wanted = [stems(w) for term in parsed.terms if not term.prefix for w in term.words]

    def fragment(row: dict) -> bool:
        found = words(row["text"] or "")
        if len(found) >= SHORT_DOCUMENT_WORDS:
            return False
        held = set().union(*(stems(w) for w in found)) if found else set()
        return not (wanted and all(stem_set & held for stem_set in wanted))

    return sorted(rows, key=fragment)  # stable: each part keeps its order


def rank(
    ranked: dict[str, list[dict]],
    limit: int,
    fusing: bool,
    above_floor: Callable[[str, dict], bool],
) -> tuple[Ranked, int]:
    """(row, normalised score, raw score, {list: rank}) best first, and how many of the top
    `limit` were left out by the relevance floor (vector-only hits for which `above_floor(list,
    row)` is false)."""
    floored = {
        name: [r for r in rows if name not in VECTOR_LISTS or above_floor(name, r)]
        for name, rows in ranked.items()
    }
    if not fusing:
        ((name, rows),) = ranked.items()
        kept = floored[name][:limit]
        best = max((r["_similarity"] for r in kept), default=0.0)
        ordered = [
            (
                row,
                row["_similarity"] if name in VECTOR_LISTS else row["_similarity"] / best,
                row["_similarity"],
                {name: i},
            )
            for i, row in enumerate(kept, 1)
        ]
        return ordered, min(limit, len(rows)) - len(kept)
    rows_by_id = {row["row_id"]: row for rows in ranked.values() for row in rows}

    def fuse(lists):
        return reciprocal_rank_fusion({n: [r["row_id"] for r in v] for n, v in lists.items()})

    # equal fused scores (first in one list each) are ordered by the retrievers' own
    # scores relative to their best, so a strong match is not left to list order
    strength: dict[str, float] = {}
    for rows in floored.values():
        top = max((abs(r["_similarity"]) for r in rows), default=0.0) or 1.0
        for r in rows:
            strength[r["row_id"]] = strength.get(r["row_id"], 0.0) + r["_similarity"] / top
    fused = sorted(fuse(floored), key=lambda f: (-f[1], -strength.get(f[0], 0.0)))[:limit]
    unfloored = {item for item, _, _ in fuse(ranked)[:limit]}
    best = len(ranked) / (RRF_K + 1)  # first in every list searched
    ordered = [(rows_by_id[item], score / best, score, ranks) for item, score, ranks in fused]
    return ordered, len(unfloored - {item for item, _, _ in fused})
