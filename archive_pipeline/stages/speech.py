"""What the speech stages share (Dagster-free): their items, audio failures as data, and the
join of transcripts and speaker turns into diarised segments. The stages themselves:
`stages/transcription.py` (Whisper) and `stages/diarisation.py` (speaker turns)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from archive_pipeline.core.ids import row_id
from archive_pipeline.stages.base import CatalogItem, ItemFailure, catalog_items

if TYPE_CHECKING:
    import pyarrow as pa


def speech_items(catalog: pa.Table) -> tuple[list[CatalogItem], list[tuple[str, str]]]:
    """Items with an audio stream (one per content), and (store_key, reason) of those skipped."""
    return catalog_items(catalog, needs="audio")


@contextlib.contextmanager
def audio_failures(item: CatalogItem) -> Iterator[list[ItemFailure]]:
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
    from archive_pipeline.core import diarisation as dz

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
                    "suspect": seg.get("suspect"),
                }
            )
    return rows
