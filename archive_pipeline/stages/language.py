"""The language spoken, span by span: an interview that switches between German and English is
transcribed in each language, never translated into one (Dagster-free, numpy + faster-whisper).

Whisper detects a language from one 30-second window. Detecting once per file (what
faster-whisper does) keeps the first language for everything after it, and Whisper then writes
the German half as an English paraphrase. Here, per chunk of decoded audio:

1. Silero VAD (faster-whisper's) finds the speech regions (pauses of half a second: sentences,
   turns); a region over one Whisper window (`UNIT_MAX_S`) is cut.
2. Whisper's language head scores every region, the encoder run over the region alone rather
   than a 30-second padded window (about 1% of real time on CPU with base). A region whose top
   language is below `CONFIDENT` is split at its shorter pauses (phrases), and each phrase long
   enough to judge (`MIN_DETECT_S`) is scored alone. (Scoring whole 30-second windows is not
   enough: a window holding two German and two English turns was scored English with p=0.89.)
3. Each piece takes its top language when that is confident; otherwise the likeliest of the
   item's languages (those detected confidently in a piece of `TRUST_ALONE_S` or more anywhere
   in it, plus the catalogue's language, a hint and never a lock). Pieces too short to score
   take their neighbour's.
4. Consecutive pieces of one language form a span (cut half-way through the pauses between
   spans).
5. A switch needs evidence. The item's dominant language (the catalogue's, else the one
   with the most speech time weighted by probability, over the chunks so far) is the prior.
   A span in another language is only a candidate when it holds `MIN_SWITCH_S` of speech
   and that language is more likely than not (`CANDIDATE`); anything shorter or less sure
   keeps the dominant language (`kept`). A candidate is transcribed in both languages and
   switches only when its own language decodes better by `SWITCH_MARGIN` (mean token
   log-probability, weighted by duration) and is not mostly a loop (compression ratio). A
   language head alone named Welsh, German and Korean on English meeting speech (p 0.6-0.9);
   the same spans decoded in those languages read as invented text, 0.3 nats per token worse
   than in English. Speech really in the other language decodes as well or better in it
   (forced into the prior language, Whisper writes the same words or a paraphrase).
   Monolingual audio is one span: transcribed exactly as without this module, plus one
   detection per 30 s of speech.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

SAMPLE_RATE = 16000
UNIT_MAX_S = 30.0  # one Whisper window
CONFIDENT = 0.8  # a language probability trusted on its own
MIN_DETECT_S = 0.5  # shorter speech is not scored: it takes its neighbour's language
TRUST_ALONE_S = 2.0  # shorter speech only chooses among the item's languages, never adds one
MIN_SWITCH_S = 2.0  # less speech in another language keeps the item's dominant language
CANDIDATE = 0.5  # a span's language must be more likely than not to be checked at all
SWITCH_MARGIN = 0.05  # nats per token the other language's decode must read better by
MAX_COMPRESSION = 2.4  # Whisper's own threshold for a decode that repeats itself
MIN_CONTEXT_S = 3.0  # shorter clips are padded with silence to this before the encoder
# Silero VAD for finding regions: pauses of half a second separate sentences and turns; a unit
# whose language is unclear is split again at pauses of a quarter second (phrases)
VAD_MIN_SILENCE_MS = 500
VAD_PAD_MS = 200
REFINE_MIN_SILENCE_MS = 250
REFINE_PAD_MS = 50

Probabilities = dict[str, float]


@dataclass
class Piece:
    """Speech from `start` to `end` (samples in the chunk) and its language scores."""

    start: int
    end: int
    probs: Probabilities = field(default_factory=dict)
    language: str | None = None
    probability: float | None = None

    @property
    def seconds(self) -> float:
        """Its length in seconds."""
        return (self.end - self.start) / SAMPLE_RATE

    @property
    def top(self) -> tuple[str, float] | None:
        """Its likeliest language and probability, if scored."""
        if not self.probs:
            return None
        language = max(self.probs, key=self.probs.__getitem__)
        return language, self.probs[language]


@dataclass(frozen=True)
class Span:
    """Samples [start, end) of a chunk to transcribe in one language (None: Whisper detects).

    `decision`: 'dominant' (the item's language), 'candidate' (another language, confident on
    enough speech: to be checked by decoding), 'kept' (another language was detected but the
    evidence was not enough), 'switched' (checked and transcribed in its own language),
    'forced' (ARCHIVE_WHISPER_LANGUAGE or an English-only model), 'item' (one language per
    item: per-span detection off). `detected`: the language head's choice over the span."""

    start: int
    end: int
    language: str | None
    probability: float | None
    decision: str = "dominant"
    detected: str | None = None
    detected_probability: float | None = None
    speech_s: float = 0.0
    dominant: str | None = None  # the item's prior language when the span was decided
    probs: Probabilities = field(default_factory=dict, compare=False)


def speech_regions(
    audio: np.ndarray,
    *,
    min_silence_ms: int = VAD_MIN_SILENCE_MS,
    pad_ms: int = VAD_PAD_MS,
    offset: int = 0,
) -> list[tuple[int, int]]:
    """(start, end) samples (plus `offset`) of the speech in 16 kHz mono audio (Silero VAD)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(min_silence_duration_ms=min_silence_ms, speech_pad_ms=pad_ms)
    return [(offset + r["start"], offset + r["end"]) for r in get_speech_timestamps(audio, options)]


def cut(regions: Sequence[tuple[int, int]], max_s: float = UNIT_MAX_S) -> list[Piece]:
    """The regions as pieces, a region longer than `max_s` cut into `max_s` pieces."""
    limit = int(max_s * SAMPLE_RATE)
    return [
        Piece(start, min(end, start + limit))
        for first, end in regions
        for start in range(first, end, limit)
    ]


def whisper_detector(model) -> Callable[[list[np.ndarray]], list[Probabilities]]:
    """A function scoring audio clips (each at most 30 s) with a faster-whisper model's
    language head. The encoder sees only the clip (at least `MIN_CONTEXT_S`), not a window
    padded to 30 s: a 6-second clip costs ~0.12 s of CPU instead of ~0.9 s, with the same
    ranking (measured with base on 2 threads)."""
    min_frames = int(MIN_CONTEXT_S * 100)

    def detect(clips: list[np.ndarray]) -> list[Probabilities]:
        scores: list[Probabilities] = []
        for clip in clips:
            features = model.feature_extractor(clip)[..., :3000]
            if features.shape[-1] < min_frames:
                pad = min_frames - features.shape[-1]
                features = np.pad(features, ((0, 0), (0, pad)))
            ranked = model.model.detect_language(model.encode(features))[0]
            scores.append({token[2:-2]: prob for token, prob in ranked})
        return scores

    return detect


def detect_pieces(
    audio: np.ndarray,
    detect: Callable[[list[np.ndarray]], list[Probabilities]],
    regions: Sequence[tuple[int, int]] | None = None,
) -> list[Piece]:
    """The chunk's speech as scored pieces: its regions (cut at 30 s), and the phrases of a
    region whose language is unclear (see the module docstring)."""
    regions = speech_regions(audio) if regions is None else regions
    whole = cut(regions)
    judged = [p for p in whole if p.seconds >= MIN_DETECT_S]
    for piece, probs in zip(judged, detect([audio[p.start : p.end] for p in judged]), strict=True):
        piece.probs = probs
    out: list[Piece] = []
    refine: list[Piece] = []
    for piece in whole:
        top = piece.top
        if top is not None and top[1] < CONFIDENT:  # unclear: judge its phrases one by one
            phrases = [
                Piece(start, end)
                for start, end in speech_regions(
                    audio[piece.start : piece.end],
                    min_silence_ms=REFINE_MIN_SILENCE_MS,
                    pad_ms=REFINE_PAD_MS,
                    offset=piece.start,
                )
            ]
            if len(phrases) > 1:
                out.extend(phrases)
                refine.extend(p for p in phrases if p.seconds >= MIN_DETECT_S)
                continue
        out.append(piece)
    for piece, probs in zip(refine, detect([audio[p.start : p.end] for p in refine]), strict=True):
        piece.probs = probs
    return out


def assign(pieces: list[Piece], *, known: set[str], hint: str | None) -> set[str]:
    """Give every piece a language (see the module docstring); returns the item's languages
    (`known` plus those detected confidently here), to carry into the next chunk."""

    def trusted(piece: Piece) -> bool:
        top = piece.top
        return top is not None and top[1] >= CONFIDENT and piece.seconds >= TRUST_ALONE_S

    languages = set(known) | {p.top[0] for p in pieces if trusted(p)}
    candidates = languages | ({hint} if hint else set())
    if not candidates:  # nothing confident anywhere: the longest judged piece's top language
        judged = [p for p in pieces if p.top is not None]
        if judged:
            candidates = {max(judged, key=lambda p: p.seconds).top[0]}
    for piece in pieces:
        if piece.top is None:
            continue
        if trusted(piece) or (piece.top[0] in candidates and piece.top[1] >= CONFIDENT):
            piece.language, piece.probability = piece.top
        else:
            best = max(candidates, key=lambda lang: piece.probs.get(lang, 0.0))
            piece.language, piece.probability = best, piece.probs.get(best, 0.0)
    # too short to judge: the previous piece's language, else the next one's, else the hint
    previous = None
    for piece in pieces:
        if piece.language is None and previous is not None:
            piece.language, piece.probability = previous.language, None
        previous = piece if piece.language is not None else previous
    following = None
    for piece in reversed(pieces):
        if piece.language is None and following is not None:
            piece.language, piece.probability = following.language, None
        following = piece if piece.language is not None else following
    for piece in pieces:
        if piece.language is None and candidates:
            piece.language = hint if hint in candidates else sorted(candidates)[0]
    return languages


def spans(pieces: Sequence[Piece], n_samples: int) -> list[Span]:
    """Consecutive pieces of one language merged into spans covering the whole chunk, cut
    half-way through the pause between languages."""
    runs: list[list[Piece]] = []
    for piece in pieces:
        if piece.language is None:
            continue
        if runs and runs[-1][-1].language == piece.language:
            runs[-1].append(piece)
        else:
            runs.append([piece])
    out: list[Span] = []
    for i, run in enumerate(runs):
        start = 0 if i == 0 else (runs[i - 1][-1].end + run[0].start) // 2
        end = n_samples if i == len(runs) - 1 else (run[-1].end + runs[i + 1][0].start) // 2
        scored = [(p.probability, p.seconds) for p in run if p.probability is not None]
        weight = sum(s for _, s in scored)
        probability = sum(p * s for p, s in scored) / weight if weight else None
        probs = weighted_probs(run)
        out.append(
            Span(
                start,
                end,
                run[0].language,
                probability,
                detected=run[0].language,
                detected_probability=probability,
                speech_s=sum(p.seconds for p in run),
                probs=probs,
            )
        )
    return out


def weighted_probs(pieces: Sequence[Piece]) -> Probabilities:
    """The pieces' language probabilities averaged, weighted by their length."""
    total: Probabilities = {}
    weight = 0.0
    for piece in pieces:
        if piece.probs:
            weight += piece.seconds
            for language, p in piece.probs.items():
                total[language] = total.get(language, 0.0) + p * piece.seconds
    return {language: p / weight for language, p in total.items()} if weight else {}


def add_scores(scores: dict[str, float], pieces: Sequence[Piece]) -> None:
    """Add the pieces' speech seconds times each language's probability to `scores`."""
    for piece in pieces:
        for language, p in piece.probs.items():
            scores[language] = scores.get(language, 0.0) + p * piece.seconds


def dominant_language(scores: dict[str, float], hint: str | None) -> str | None:
    """The item's prior language: the catalogue's, else the likeliest by speech time."""
    if hint:
        return hint
    return max(scores, key=lambda k: (scores[k], k)) if scores else None


def with_prior(spans_: Sequence[Span], dominant: str | None) -> list[Span]:
    """Spans in another language than `dominant` become candidates when confident on enough
    speech, else keep the dominant language ('kept')."""
    out = []
    for span in spans_:
        span = replace(span, dominant=dominant)
        if dominant is None or span.language == dominant:
            out.append(replace(span, decision="dominant"))
        elif span.speech_s >= MIN_SWITCH_S and (span.probability or 0.0) >= CANDIDATE:
            out.append(replace(span, decision="candidate"))
        else:
            out.append(kept(span))
    return out


def kept(span: Span) -> Span:
    """The span transcribed in the dominant language, what was detected kept as evidence."""
    return replace(
        span, language=span.dominant, probability=span.probs.get(span.dominant), decision="kept"
    )


def decode_score(segments: Sequence) -> tuple[float, float]:
    """(mean token log-probability weighted by duration, share of the duration in segments
    that repeat themselves) of decoded faster-whisper segments; (-inf, 0) when nothing was
    decoded."""
    weight = sum(max(s.end - s.start, 0.01) for s in segments)
    if not weight:
        return float("-inf"), 0.0
    logprob = sum(s.avg_logprob * max(s.end - s.start, 0.01) for s in segments) / weight
    looping = sum(
        max(s.end - s.start, 0.01) for s in segments if s.compression_ratio > MAX_COMPRESSION
    )
    return logprob, looping / weight


def switch_wins(own: Sequence, dominant: Sequence) -> bool:
    """A candidate's decode in its own language beats the dominant language's decode: a better
    log-probability, and not mostly a loop (one looping segment is flagged on its own)."""
    own_logprob, own_looping = decode_score(own)
    dominant_logprob, _ = decode_score(dominant)
    return own_looping <= 0.5 and own_logprob >= dominant_logprob + SWITCH_MARGIN
