"""search_documents: one searchable row per speech segment and keyframe, with its indexes."""

import time

import dagster as dg

from archive_pipeline.core.embedders import text_embedding_dim, text_model_id
from archive_pipeline.defs.derived_assets import Derivation, DerivedRun, derived_asset
from archive_pipeline.defs.nightly import nightly_freshness
from archive_pipeline.defs.reporting import (
    markdown_table,
)
from archive_pipeline.search.documents import KEYFRAME_COLUMNS, SEGMENT_COLUMNS, assemble
from archive_pipeline.search.indexes import TABLE, ensure_indexes
from archive_pipeline.stages import derived

ASSEMBLY_VERSION = (
    "6"  # 2: keyed by inputs' fingerprint; 3: text_en / text_de; 4: URIs; 5: no suspects;
    # 6: passages of pages, their page, region and language
)
SEARCH_GROUP = 100  # media items assembled per read and commit
PREVIEW_COLUMNS = ["uri", "text", "kind", "time_s", "speaker"]


def _search_documents(run: DerivedRun) -> Derivation:
    wh, scope, decade = run.warehouse, run.scope, run.decade
    clip = run.context.resources.vision_models.clip()
    text_model = text_model_id(clip)
    image_model = clip.model_id if clip.configured else None
    dim = text_embedding_dim(clip)
    wh.table(TABLE, dim=dim)  # created with this vector length if new; a different one is refused
    # Only items whose inputs changed are assembled again (their ledger entries, their
    # diarised rows' keys, their title, the models): an unchanged decade writes nothing.
    titles = {
        r["media_id"]: r["title"]
        for r in wh.read("media_catalog", scope, columns=["media_id", "title"]).to_pylist()
    }
    diarised = derived.written_keys(wh, "diarised_segments", decade)
    extra = {
        media: [*(f"diarised:{k}" for k in diarised.get(media, ())), f"title:{title}"]
        for media, title in titles.items()
        if media in run.ledger.productive or media in diarised
    }
    stale_vectors = 0
    start = time.perf_counter()

    def documents(group: str) -> list[dict]:
        nonlocal stale_vectors
        assembly = assemble(
            decade=decade,
            segments=wh.read("diarised_segments", scope, columns=SEGMENT_COLUMNS, filter=group),
            keyframes=wh.read("keyframes", scope, columns=KEYFRAME_COLUMNS, filter=group),
            shots=wh.read("shots", scope, filter=group),
            frame_text=wh.read("frame_text", scope, filter=group),
            text_embeddings=wh.read("segment_embeddings", scope, filter=group),
            # read only with an image-text model (reading would create the table empty)
            image_embeddings=(
                wh.read("keyframe_embeddings", scope, filter=group) if image_model else None
            ),
            catalog=wh.read("media_catalog", scope, filter=group),
            text_model_id=text_model,
            image_model_id=image_model,
            dim=dim,
        )
        stale_vectors += len(assembly.stale_vectors)
        return assembly.rows

    def describe(write) -> dict:
        indexes = ensure_indexes(wh.table(TABLE), run.context.resources.search_index.settings())
        if write.committed:
            wh.maintain(TABLE)  # folds the new rows into the indexes
        if stale_vectors:
            run.context.log.warning(
                f"{stale_vectors} documents have no current text vector (text or model changed "
                "since segment_embeddings ran): searchable by text only until it runs again"
            )
        first = wh.read(TABLE, scope, columns=PREVIEW_COLUMNS, limit=10).to_pylist()
        return {
            **{
                f"{kind}_documents": wh.count(TABLE, scope, filter=f"kind = '{kind}'")
                for kind in ("speech", "keyframe")
            },
            "with_vector": wh.count(TABLE, scope, filter="vector IS NOT NULL"),
            "with_image_vector": wh.count(TABLE, scope, filter="image_vector IS NOT NULL"),
            "without_current_vector": stale_vectors,
            "dim": dim,
            "text_model": text_model,
            "image_model": image_model or "not configured",
            "indexes": dg.MetadataValue.json(indexes),
            "seconds": round(time.perf_counter() - start, 3),
            "preview": dg.MetadataValue.md(
                markdown_table(
                    first, ["file", "text", "kind", "time_s", "speaker"], total=write.rows
                )
            ),
        }

    return Derivation(
        extra,
        build=documents,
        salt=f"search:{ASSEMBLY_VERSION}:{text_model}:{image_model}:{dim}",
        group_size=SEARCH_GROUP,
        dim=dim,
        describe=describe,
    )


search_documents = derived_asset(
    TABLE,
    deps=[
        "media_catalog",
        "diarised_segments",
        "shots",
        "keyframes",
        "frame_text",
        "segment_embeddings",
        "keyframe_embeddings",
    ],
    code_version=ASSEMBLY_VERSION,
    description="Searchable speech segments and keyframes of the decade: text, vectors, "
    "BM25/vector/BITMAP indexes.",
    group="search",
    derive=_search_documents,
    resources=("vision_models", "search_index"),
    freshness_policy=nightly_freshness,
)
