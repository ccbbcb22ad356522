"""The transcripts stage (Dagster-free, run in Ray workers): speech to text with faster-whisper,
VAD, the language per speech span, segment and word times."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archive_pipeline.config import settings as app_settings
from archive_pipeline.config.models import (
    ModelUnavailableError,
    resolve_whisper,
    whisper_model_id,
)
from archive_pipeline.core import devices
from archive_pipeline.core.compute import StageResources
from archive_pipeline.core.ids import row_id
from archive_pipeline.core.store import Store
from archive_pipeline.stages import language
from archive_pipeline.stages.base import (
    CatalogItem,
    ItemFailure,
    LoadsModels,
    Reader,
    Skipped,
    TableRows,
    row_values,
)
from archive_pipeline.stages.speech import audio_failures, speech_items

if TYPE_CHECKING:
    import pyarrow as pa

    from archive_pipeline.core.audio import DecodedAudioCache


@dataclass(frozen=True)
class Transcript:
    """One item's transcription: its main language and its segments (absolute seconds; each
    segment the values of one transcripts row)."""

    language: str | None
    segments: list[dict[str, Any]]


@dataclass(frozen=True)
class WhisperSettings:
    """faster-whisper options (ARCHIVE_WHISPER_* settings)."""

    model: str = app_settings.WHISPER_MODEL.default
    device: str = app_settings.DEVICE.default  # resolved where the model loads (core.devices)
    compute_type: str = "int8"  # float16 on GPUs
    beam_size: int = 5
    vad_filter: bool = True
    word_timestamps: bool = True
    batched: bool = False  # BatchedInferencePipeline
    batch_size: int = 8  # segments per batch when batched
    cpu_threads: int = 0  # 0: the stage's num_cpus
    # Long media are decoded and transcribed in chunks of about this; peak memory follows the
    # chunk, not the file (measured: ~0.8 GB at 300 s with base, ~1.2 GB at 600 s).
    chunk_s: float = 300.0
    language: str | None = None  # force a language (a lock); else detected, catalogue as hint
    # detect the language per speech span and transcribe each span in its own (stages/language);
    # off: one language per item (the catalogue's, else detected once), as before
    language_per_span: bool = True
    temperatures: str = "0"  # '0': the same text each run
    # a language switch needs evidence (stages/language step 5); off: the head's choice per
    # span, the previous default (kept to measure against: benchmarks/speech_quality.py)
    switch_evidence: bool = True

    @classmethod
    def from_settings(cls, overrides: Mapping[str, Any] | None = None) -> WhisperSettings:
        """The settings now (ARCHIVE_WHISPER_*), `speech_models` fields in `overrides` first."""
        v = app_settings.resolve("speech_models", overrides)
        own = ("model", "device", "language")  # their own settings, not ARCHIVE_WHISPER_OPTIONS
        return cls(
            model=v.whisper_model,
            device=v.device,
            language=v.whisper_language or None,
            **app_settings.options(
                app_settings.WHISPER_OPTIONS, v.whisper_options, cls, exclude=own
            ),
        )

    def __post_init__(self) -> None:
        temperatures(self.temperatures)  # a bad value fails before any worker starts

    def params(self) -> dict[str, Any]:
        """The options that change results (device and threads do not)."""
        params = asdict(self)
        for name in ("model", "device", "cpu_threads"):
            params.pop(name)
        return params


class TranscribeStage(LoadsModels):
    """Speech to text with faster-whisper: VAD, language detection, segment and word times."""

    name = "transcripts"
    tables = ("transcripts",)
    _loaded = ("_model", "_pipeline", "_detect")
    code_version = "3"  # 2: language per speech span; 3: switches need evidence, suspects
    default_resources = StageResources(num_cpus=1)

    @classmethod
    def select(cls, read: Reader) -> tuple[list[CatalogItem], Skipped]:
        """The decade's items with an audio stream."""
        return speech_items(read("media_catalog"))

    def __init__(
        self,
        store: Store,
        settings: WhisperSettings | None = None,
        *,
        resources: StageResources | None = None,
        model_cache: str | None = None,
        audio_cache: DecodedAudioCache | None = None,
        model: Any = None,
    ) -> None:
        """`model`: a loaded faster-whisper `WhisperModel` of `settings.model` (e.g. shared by
        tests); `setup()` then loads nothing."""
        self.store = store
        self.settings = settings or WhisperSettings()
        self.resources = resources or self.default_resources
        self.params = self.settings.params()
        self.model_id = whisper_model_id(self.settings.model)
        self.model_cache = model_cache
        self.audio_cache = audio_cache  # the decoded audio is kept for speaker_turns
        self._model = model
        self._pipeline = None
        self._detect = None

    def setup(self) -> None:
        """Load the Whisper model once per worker."""
        from faster_whisper import BatchedInferencePipeline

        if self._model is None:
            self._model = self._load_model()
        if self.settings.batched:
            self._pipeline = BatchedInferencePipeline(self._model)
        if self._model.model.is_multilingual:
            self._detect = language.whisper_detector(self._model)

    def _load_model(self):
        from faster_whisper import WhisperModel

        path, _ = resolve_whisper(
            self.settings.model, Path(self.model_cache) if self.model_cache else None
        )
        device = devices.resolve(self.settings.device)
        try:
            # As many threads as CPUs reserved for this worker: no oversubscription.
            threads = self.settings.cpu_threads or max(1, int(self.resources.num_cpus))
            return WhisperModel(
                path, device=device, compute_type=self.settings.compute_type, cpu_threads=threads
            )
        except Exception as exc:
            raise ModelUnavailableError(
                f"Whisper model {self.settings.model!r} could not be loaded ({exc}); set "
                "ARCHIVE_WHISPER_MODEL to 'base', 'tiny.en', a CTranslate2 directory or a hub id"
            ) from exc

    def loaded_models(self) -> dict[str, Any]:
        """What `setup()` loaded, as the constructor takes it (`model`)."""
        return {"model": self._model}

    def transcribe_array(self, audio, *, language: str | None):
        """Transcribe 16 kHz mono samples; return (segments, info) from faster-whisper."""
        options = dict(
            language=language,
            beam_size=self.settings.beam_size,
            word_timestamps=self.settings.word_timestamps,
            vad_filter=self.settings.vad_filter,
            temperature=temperatures(self.settings.temperatures),
        )
        if self._pipeline is not None:
            options.pop("vad_filter")  # the batched pipeline always segments with VAD
            return self._pipeline.transcribe(audio, batch_size=self.settings.batch_size, **options)
        return self._model.transcribe(audio, **options)

    def content_id(self, item: CatalogItem) -> str:
        """The audio's content and the catalogue language it is decoded with."""
        return f"{item.sha256}|language={item.language or ''}"

    def rows(self, item: CatalogItem, value: Transcript, *, decade: str) -> TableRows:
        """transcripts rows of one item."""
        return {"transcripts": transcript_rows(item, value, decade=decade)}

    rebuilds_from_rows = True  # value_from_rows: content done under another URI is copied

    def value_from_rows(self, rows: dict[str, pa.Table], item: CatalogItem) -> Transcript:
        """The result `rows()` made these rows of (the same audio done under another URI)."""
        segments = row_values(rows["transcripts"], "segment_index")
        return Transcript(main_language(segments), segments)

    def spans(
        self, audio, *, hint: str | None, languages: set[str], scores: dict[str, float]
    ) -> list[language.Span]:
        """The spans of a chunk to transcribe and their languages (a span without a language:
        Whisper detects it). `languages` collects the item's languages across chunks, `scores`
        its speech time per language (the dominant language)."""
        whole = len(audio)
        forced = whisper_language(self.settings.language)
        if forced:
            return [language.Span(0, whole, forced, 1.0, decision="forced")]
        if self._detect is None:  # an English-only model (tiny.en): nothing to detect
            return [language.Span(0, whole, "en", 1.0, decision="forced")]
        if not self.settings.language_per_span:
            if hint:
                return [language.Span(0, whole, hint, 1.0, decision="item")]
            # detected in the first chunk with speech, kept for the later ones
            return [language.Span(0, whole, next(iter(languages), None), None, decision="item")]
        pieces = language.detect_pieces(audio, self._detect)
        languages |= language.assign(pieces, known=languages, hint=hint)
        language.add_scores(scores, pieces)
        found = language.spans(pieces, whole)
        if not found:
            return [language.Span(0, whole, None, None)]
        if not self.settings.switch_evidence:
            return found
        return language.with_prior(found, language.dominant_language(scores, hint))

    def decode(self, audio, span: language.Span, offset: float) -> list[dict[str, Any]]:
        """Transcribe a span; a candidate switch is decoded in both languages and the better
        decode is kept (`language.switch_wins`), the evidence recorded on every segment."""
        parts, info = self.transcribe_array(audio, language=span.language)
        parts = list(parts)
        if span.decision == "candidate":
            others, _ = self.transcribe_array(audio, language=span.dominant)
            others = list(others)
            if language.switch_wins(parts, others):
                span = replace(span, decision="switched")
            else:
                span, parts = language.kept(span), others
        spoken = (span.language, span.probability)
        if span.language is None:  # Whisper's own detection over the span
            spoken = (info.language, info.language_probability)
            span = replace(
                span, detected=info.language, detected_probability=info.language_probability
            )
        return [_segment_dict(segment, offset, *spoken, span) for segment in parts]

    def process(self, item: CatalogItem) -> Transcript | ItemFailure:
        """Transcribe one item chunk by chunk, each speech span in its language; times are
        absolute seconds in the media."""
        from archive_pipeline.core.audio import iter_chunks

        hint = whisper_language(item.language)
        languages: set[str] = set()
        scores: dict[str, float] = {}
        segments: list[dict[str, Any]] = []
        keeping = (
            self.audio_cache.writer(item.sha256)
            if self.audio_cache
            else contextlib.nullcontext(lambda samples: None)
        )
        with (
            self.store.local_path(item.store_key) as path,
            audio_failures(item) as failed,
            keeping as keep,
        ):
            for offset, chunk in iter_chunks(path, chunk_s=self.settings.chunk_s):
                keep(chunk)
                if len(chunk) < 1600:  # under 0.1 s: nothing to recognise
                    continue
                spans = self.spans(chunk, hint=hint, languages=languages, scores=scores)
                for span in spans:
                    audio = chunk[span.start : span.end]
                    found = self.decode(audio, span, offset + span.start / 16000)
                    if found and span.language is None and not self.settings.language_per_span:
                        languages.add(found[0]["language"])  # one language per item: from here
                    segments += found
        if failed:
            return failed[0]
        return Transcript(main_language(segments), segments)


def compression_ratio(text: str) -> float:
    """How much the segment's own text compresses (gzip), Whisper's repetition measure; Whisper
    reports it per 30-second window, which would flag every segment of a window for one loop."""
    import zlib

    data = text.encode()
    return len(data) / len(zlib.compress(data)) if data else 0.0


def temperatures(text: str) -> list[float]:
    """'0,0.2,0.4' -> [0.0, 0.2, 0.4]; a SettingError naming ARCHIVE_WHISPER_OPTIONS'
    `temperatures` for anything but numbers from 0 to 1."""
    try:
        values = [float(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or not all(0 <= v <= 1 for v in values):
        raise app_settings.SettingError(
            f"ARCHIVE_WHISPER_OPTIONS temperatures={text!r}: expected numbers from 0 to 1, "
            "comma-separated"
        )
    return values


def main_language(segments: Sequence[Mapping[str, Any]]) -> str | None:
    """The language with the most speech time among segments (None without segments)."""
    seconds: dict[str, float] = {}
    for seg in segments:
        if seg.get("language"):
            key = seg["language"]
            seconds[key] = seconds.get(key, 0.0) + seg["end_s"] - seg["start_s"]
    return max(seconds, key=lambda k: (seconds[k], k)) if seconds else None


def whisper_language(code: str | None) -> str | None:
    """A catalogue language usable as Whisper's hint ('en', 'de', 'English', 'eng'), else None
    (the language is then detected)."""
    if not code:
        return None
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    text = code.strip().lower()
    if text in _LANGUAGE_CODES:
        return text
    if "-" in text or "_" in text:  # en-GB, pt_BR
        return whisper_language(text.replace("_", "-").split("-")[0])
    names = {
        "english": "en",
        "german": "de",
        "deutsch": "de",
        "french": "fr",
        "spanish": "es",
        "italian": "it",
        "dutch": "nl",
        "eng": "en",
        "deu": "de",
        "ger": "de",
        "fra": "fr",
        "fre": "fr",
        "spa": "es",
        "ita": "it",
        "nld": "nl",
        "dut": "nl",
    }
    return names.get(text)


def _segment_dict(
    segment: Any,
    offset: float,
    language: str | None,
    probability: float | None,
    span: language.Span | None = None,
) -> dict[str, Any]:
    words = [
        {
            "start": w.start + offset,
            "end": w.end + offset,
            "word": w.word,
            "probability": w.probability,
        }
        for w in (segment.words or [])
    ]
    out = {
        "start_s": segment.start + offset,
        "end_s": segment.end + offset,
        "text": segment.text.strip(),
        "language": language,
        "language_probability": probability,
        "language_decision": span.decision if span else None,
        "detected_language": span.detected if span else None,
        "detected_probability": span.detected_probability if span else None,
        "avg_logprob": segment.avg_logprob,
        "no_speech_prob": segment.no_speech_prob,
        "compression_ratio": compression_ratio(segment.text.strip()),
        "words": words,
    }
    out["suspect"] = suspect_reason(out)
    return out


# Whisper's own limits (openai/whisper transcribe(): logprob_threshold, no_speech_threshold,
# compression_ratio_threshold: language.MAX_COMPRESSION), plus a short segment whose words
# Whisper itself doubts
NO_SPEECH = 0.6
LOW_LOGPROB = -1.0
SHORT_WORDS = 2
UNSURE_WORD = 0.5


def suspect_reason(segment: Mapping[str, Any]) -> str | None:
    """Why a segment is likely a hallucination ('no_speech', 'repetition', 'low_logprob',
    'unsure_short'), or None. Suspect segments stay in the tables, flagged, and are left out
    of search."""
    logprob = segment.get("avg_logprob")
    no_speech = segment.get("no_speech_prob")
    if (
        no_speech is not None
        and logprob is not None
        and no_speech > NO_SPEECH
        and logprob < LOW_LOGPROB
    ):
        return "no_speech"
    if (segment.get("compression_ratio") or 0.0) > language.MAX_COMPRESSION:
        return "repetition"
    if logprob is not None and logprob < LOW_LOGPROB:
        return "low_logprob"
    words = segment.get("words") or []
    if words and len(words) <= SHORT_WORDS:
        mean = sum(w["probability"] for w in words) / len(words)
        if mean < UNSURE_WORD:
            return "unsure_short"
    return None


def transcript_rows(item: CatalogItem, value: Transcript, *, decade: str) -> list[dict]:
    """One transcripts row per segment."""
    return [
        {
            "row_id": row_id("transcripts", decade, item.media_id, str(i)),
            "media_id": item.media_id,
            "uri": item.uri,
            "segment_index": i,
            **segment,
        }
        for i, segment in enumerate(value.segments)
    ]
