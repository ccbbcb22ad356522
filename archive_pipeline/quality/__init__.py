"""Quality measures computed by code in the repo: word, character and diarisation error rates,
shot-cut precision/recall."""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

# Spelled the same on both sides, as Whisper's English normaliser does.
_ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint"}


def normalise_text(text: str) -> str:
    """Lower-case, strip accents and punctuation, split hyphenated words, expand Mr/Mrs/Dr/St."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = text.lower().replace("-", " ")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    text = re.sub(r"'(?![a-z])|(?<![a-z])'", " ", text)
    return " ".join(_ABBREVIATIONS.get(word, word) for word in text.split())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER after `normalise_text` on both sides (jiwer)."""
    import jiwer

    return jiwer.wer(normalise_text(reference), normalise_text(hypothesis))


def character_error_rate(reference: str, hypothesis: str) -> float:
    """CER of OCR output: whitespace runs (line breaks included) collapsed to one space, case
    and characters kept as they are (jiwer)."""
    import jiwer

    def squash(text: str) -> str:
        return " ".join(text.split())

    return jiwer.cer(squash(reference), squash(hypothesis))


def long_s_words(reference: str, reading: str) -> tuple[int, int]:
    """(read as printed, in all) of the reference's words with a long s (ſ): a word counts as
    read when the reading holds it exactly (punctuation around words ignored), as many times."""
    from collections import Counter

    def words(text: str) -> Counter[str]:
        return Counter(w.strip(".,;:!?()\"'«»„“”") for w in text.split())

    wanted = Counter({w: n for w, n in words(reference).items() if "ſ" in w})
    got = words(reading)
    return sum(min(n, got[w]) for w, n in wanted.items()), sum(wanted.values())


def cuts_match(found: Sequence[int], expected: Sequence[int], *, tolerance: int = 1) -> dict:
    """Cut precision/recall: each expected cut matched by at most one found cut within
    `tolerance` frames."""
    return transitions_match(found, [(cut, cut) for cut in expected], tolerance=tolerance)


def speech_references(speech_dir: Path) -> dict[str, str]:
    """Reference transcripts of ../shared/media/speech: file name -> text."""
    refs = {"jfk.flac": (speech_dir / "jfk.txt").read_text().strip()}
    with open(speech_dir / "librivox.tsv") as handle:
        for row in csv.reader(handle, delimiter="\t"):
            if len(row) >= 2 and row[0].strip():
                name = row[0].strip()
                refs[name if name.endswith(".wav") else f"{name}.wav"] = row[1].strip()
    return refs


def read_rttm(path: Path) -> list[tuple[float, float, str]]:
    """(start, end, speaker) turns of an RTTM file."""
    turns = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "SPEAKER":
            start, duration = float(parts[3]), float(parts[4])
            turns.append((start, start + duration, parts[7]))
    return turns


def diarization_error_rate(
    reference: Sequence[tuple[float, float, str]],
    hypothesis: Sequence[tuple[float, float, str]],
    *,
    collar_s: float = 0.25,
    uem: tuple[float, float] | None = None,
) -> float:
    """DER with a forgiveness collar of `collar_s` on each side of reference boundaries
    (pyannote.metrics' `collar` is the total width, so it gets 2 x collar_s)."""
    from pyannote.core import Annotation, Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    def annotation(turns):
        out = Annotation()
        for start, end, speaker in turns:
            out[Segment(start, end)] = speaker
        return out

    metric = DiarizationErrorRate(collar=2 * collar_s)
    ref = annotation(reference)
    region = Timeline([Segment(*uem)]) if uem else None
    return float(metric(ref, annotation(hypothesis), uem=region))


def retrieval_scores(ranks: Sequence[int | None], *, k: int = 5) -> dict[str, float]:
    """From each query's rank of its first relevant hit (1-based, None: not found): recall@k
    (share of queries with a relevant hit in the top k) and MRR (mean of 1/rank, 0 if none)."""
    if not ranks:
        return {f"recall@{k}": 0.0, "mrr": 0.0, "queries": 0}
    return {
        f"recall@{k}": sum(1 for r in ranks if r is not None and r <= k) / len(ranks),
        "mrr": sum(1 / r for r in ranks if r) / len(ranks),
        "queries": len(ranks),
    }


def hit_is_relevant(hit, relevant: dict[str, str]) -> bool:
    """A search hit matches a label: `uri` and `text` are case-insensitive substrings, `kind`
    and `speaker` exact."""
    checks = {
        "uri": lambda v: v.lower() in hit.uri.lower(),
        "text": lambda v: v.lower() in hit.text.lower(),
        "kind": lambda v: hit.kind == v,
        "speaker": lambda v: hit.speaker == v,
    }
    return all(checks[field](value) for field, value in relevant.items())


def evaluate_search(searcher, queries: list[dict], *, mode: str, k: int = 5, limit: int = 10):
    """recall@k and MRR of labelled queries (`{"query", "relevant", "options"?}`) in one search
    mode, plus each query's rank of its first relevant hit."""
    ranks: list[int | None] = []
    for labelled in queries:
        results = searcher.search(
            query=labelled["query"],
            mode=mode,
            limit=limit,
            thumbnails=False,
            **labelled.get("options", {}),
        )
        ranks.append(
            next((h.rank for h in results.hits if hit_is_relevant(h, labelled["relevant"])), None)
        )
    return {**retrieval_scores(ranks, k=k), "ranks": ranks}


def transitions_match(
    found: Sequence[int], spans: Sequence[tuple[int, int]], *, tolerance: int = 1
) -> dict:
    """Cut precision/recall against gradual transitions: each (first, last) frame span is matched
    by at most one found cut inside it (+- `tolerance`); a second cut in the same span, or one
    outside every span, is a false one."""
    unmatched = list(spans)
    hits = 0
    for cut in found:
        match = next((s for s in unmatched if s[0] - tolerance <= cut <= s[1] + tolerance), None)
        if match is not None:
            unmatched.remove(match)
            hits += 1
    precision = hits / len(found) if found else 1.0
    recall = hits / len(spans) if spans else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "hits": hits,
        "found": len(found),
        "expected": len(spans),
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }
