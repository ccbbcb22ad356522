"""search_documents: one searchable row per speech segment and keyframe, with its indexes."""

import time

import dagster as dg

from archive_pipeline.defs.reporting import (
    OWNERS,
    markdown_table,
    table_definition_metadata,
    table_metadata,
)
from archive_pipeline.partitions import decade_partitions
from archive_pipeline.resources import LanceWarehouse, SearchIndex, VisionModels
from archive_pipeline.search.documents import KEYFRAME_COLUMNS, SEGMENT_COLUMNS, assemble
from archive_pipeline.search.indexes import TABLE, ensure_indexes
from archive_pipeline.stages.embeddings import text_embedding_dim, text_model_id

ASSEMBLY_VERSION = "1"


@dg.asset(
    partitions_def=decade_partitions,
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
    group_name="search",
    kinds={"lance"},
    owners=OWNERS,
    metadata=table_definition_metadata(TABLE),
)
def search_documents(
    context: dg.AssetExecutionContext,
    warehouse: LanceWarehouse,
    vision_models: VisionModels,
    search_index: SearchIndex,
) -> dg.MaterializeResult:
    """Searchable speech segments and keyframes of the decade: text, vectors, BM25/vector/BITMAP
    indexes."""
    decade = context.partition_key
    start = time.perf_counter()
    clip = vision_models.clip()
    text_model = text_model_id(clip)
    image_model = clip.model_id if clip.configured else None
    wh = warehouse.get_warehouse()
    scope = {"decade": decade}
    assembly = assemble(
        decade=decade,
        segments=wh.read("diarised_segments", scope, columns=SEGMENT_COLUMNS),
        keyframes=wh.read("keyframes", scope, columns=KEYFRAME_COLUMNS),
        shots=wh.read("shots", scope),
        frame_text=wh.read("frame_text", scope),
        text_embeddings=wh.read("segment_embeddings", scope),
        # read only with an image-text model (reading would create the table empty)
        image_embeddings=wh.read("keyframe_embeddings", scope) if image_model else None,
        catalog=wh.read("media_catalog", scope),
        text_model_id=text_model,
        image_model_id=image_model,
        dim=text_embedding_dim(clip),
    )
    write = wh.replace(TABLE, assembly.rows, scope=scope, dim=assembly.dim)
    indexes = ensure_indexes(wh.table(TABLE), search_index.settings())
    if write.committed:
        wh.maintain(TABLE)  # folds the new rows into the indexes
    if assembly.stale_vectors:
        context.log.warning(
            f"{len(assembly.stale_vectors)} documents have no current text vector (text or model "
            "changed since segment_embeddings ran): searchable by text only until it runs again"
        )
    rows = assembly.rows
    kinds = {kind: sum(r["kind"] == kind for r in rows) for kind in ("speech", "keyframe")}
    return dg.MaterializeResult(
        metadata={
            **table_metadata(wh, TABLE, write),
            **{f"{kind}_documents": n for kind, n in kinds.items()},
            "with_vector": assembly.with_vector,
            "with_image_vector": assembly.with_image_vector,
            "without_current_vector": len(assembly.stale_vectors),
            "dim": assembly.dim,
            "text_model": text_model,
            "image_model": image_model or "not configured",
            "indexes": dg.MetadataValue.json(indexes),
            "seconds": round(time.perf_counter() - start, 3),
            "preview": dg.MetadataValue.md(
                markdown_table(rows, ["file", "text", "kind", "time_s", "speaker"])
            ),
        },
    )
