"""Find one voice across files: the speaker embeddings kept per turn in `speaker_turns`.

A voice is the mean of its turns' unit embeddings (one item, one speaker label). Candidates are
every (item, speaker) of the warehouse embedded by the same model, read in batches (memory is
one batch plus one running sum per voice), ranked by cosine similarity to the asked voice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from archive_pipeline.core.diarisation import unit
from archive_pipeline.core.sql import sql_literal
from archive_pipeline.core.warehouse import Warehouse, WarehouseMissingError

COLUMNS = ["media_id", "uri", "decade", "speaker", "speaker_name", "start_s", "embedding"]


class VoiceError(ValueError):
    """The voice asked for has no stored embedding (unknown item or speaker, or too short)."""


@dataclass(frozen=True)
class VoiceMatch:
    """One voice of one item and how similar it is to the voice asked for."""

    media_id: str
    uri: str
    decade: str
    speaker: str
    speaker_name: str | None
    similarity: float
    turns: int
    first_s: float  # where the voice is first heard in that item

    def to_dict(self) -> dict:
        return asdict(self)


def _batches(warehouse: Warehouse, where: str, batch_rows: int):
    try:
        dataset = warehouse.table("speaker_turns").to_lance()
    except WarehouseMissingError as exc:
        raise VoiceError("no speaker_turns table: run the speech assets first") from exc
    columns = [*COLUMNS, "model_id"]
    yield from dataset.to_batches(columns=columns, filter=where, batch_size=batch_rows)


def find_voice(
    warehouse: Warehouse,
    media_id: str,
    speaker: str,
    *,
    decades: Sequence[str] | None = None,
    limit: int = 10,
    include_same_item: bool = False,
    batch_rows: int = 65536,
) -> list[VoiceMatch]:
    """The voices most like `speaker` (label such as SPEAKER_01, or catalogue name) of item
    `media_id`, best first, from other items unless `include_same_item`."""
    asked = speaker.casefold()
    where = (
        f"media_id = {sql_literal(media_id)} AND embedding IS NOT NULL AND "
        f"(lower(speaker) = {sql_literal(asked)} OR lower(speaker_name) = {sql_literal(asked)})"
    )
    vectors, models = [], set()
    for batch in _batches(warehouse, where, batch_rows):
        models.update(batch.column("model_id").to_pylist())
        vectors.extend(batch.column("embedding").to_pylist())
    if not vectors:
        raise VoiceError(
            f"no speaker embedding for {speaker!r} in {media_id!r} (unknown item or speaker, "
            "turns under 0.5 s, or a diariser that keeps none: resemblyzer)"
        )
    model = sorted(models)[0]  # one item's turns come from one diarisation run
    query = unit(np.mean([unit(np.asarray(v, dtype=np.float64)) for v in vectors], axis=0))
    where = f"embedding IS NOT NULL AND model_id = {sql_literal(model)}"
    if decades:
        where += f" AND decade IN ({', '.join(sql_literal(d) for d in decades)})"
    sums: dict[tuple[str, str], np.ndarray] = {}
    info: dict[tuple[str, str], list] = {}
    for batch in _batches(warehouse, where, batch_rows):
        embeddings = np.asarray(batch.column("embedding").to_pylist(), dtype=np.float64)
        rows = batch.select(COLUMNS[:-1]).to_pylist()
        for row, vector in zip(rows, embeddings, strict=True):
            key = (row["media_id"], row["speaker"])
            if key[0] == media_id and not include_same_item:
                continue
            sums[key] = sums.get(key, 0.0) + unit(vector)
            seen = info.setdefault(key, [row, 0, row["start_s"]])
            seen[1] += 1
            seen[2] = min(seen[2], row["start_s"])
    matches = [
        VoiceMatch(
            media_id=key[0],
            uri=row["uri"],
            decade=row["decade"],
            speaker=key[1],
            speaker_name=row["speaker_name"],
            similarity=round(float(unit(sums[key]) @ query), 4),
            turns=turns,
            first_s=first,
        )
        for key, (row, turns, first) in info.items()
    ]
    matches.sort(key=lambda m: (-m.similarity, m.media_id, m.speaker))
    return matches[:limit]
