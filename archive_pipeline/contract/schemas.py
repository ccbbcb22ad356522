"""The Lance table contract: every table's Arrow schema with column descriptions.

Writers build rows against these schemas and the column tables of `docs/tables.md` are
rendered from them (`archive-pipeline tables --write docs/tables.md` rewrites that part; a test
checks the doc is current). Downstream teams read the tables without our code, so a change
here is a contract change: add columns, do not repurpose them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

DESCRIPTION_KEY = b"description"


def col(name: str, type_: pa.DataType, description: str, *, nullable: bool = True) -> pa.Field:
    """Build a schema field whose description travels in the Arrow field metadata."""
    return pa.field(
        name, type_, nullable=nullable, metadata={DESCRIPTION_KEY: description.encode()}
    )


TIMESTAMP = pa.timestamp("us", tz="UTC")

# Columns every table carries (DESIGN §4), first in every schema.
COMMON_COLUMNS: tuple[pa.Field, ...] = (
    col(
        "row_id",
        pa.string(),
        "Deterministic row key, unique within the table (uuid5 of the row's natural key).",
        nullable=False,
    ),
    col(
        "decade",
        pa.string(),
        "Decade partition: '1900s' ... '2020s' or 'undated'. Filter on it to prune.",
        nullable=False,
    ),
    col(
        "media_id",
        pa.string(),
        "Stable media id: first 32 hex digits of the content sha256 (null if unreadable).",
    ),
    col(
        "cache_key",
        pa.string(),
        "Incremental cache key: hash of (content, stage, model id, parameters, code version).",
    ),
    col("model_id", pa.string(), "Model or tool (with version) that produced the row."),
    col("model_params", pa.string(), "JSON of the stage parameters that produced the row."),
    col("pipeline_version", pa.string(), "archive_pipeline version that wrote the row."),
    col(
        "created_at",
        TIMESTAMP,
        "When the row was computed (UTC); kept when a cached row is reused.",
    ),
)

MEDIA_CATALOG = pa.schema(
    [
        *COMMON_COLUMNS,
        col(
            "uri",
            pa.string(),
            "Object URI (file:///... or s3://bucket/key): where the media lives.",
            nullable=False,
        ),
        col(
            "store_key",
            pa.string(),
            "Key of the object relative to the store root.",
            nullable=False,
        ),
        col("size_bytes", pa.int64(), "Object size in bytes."),
        col("modified_at", TIMESTAMP, "Object modification time (S3 LastModified or file mtime)."),
        col("etag", pa.string(), "S3 ETag (null for local files)."),
        col("sha256", pa.string(), "sha256 of the whole content (hex)."),
        col(
            "kind",
            pa.string(),
            "'audio', 'video' or 'image' (from the streams, not only the extension).",
        ),
        col(
            "container",
            pa.string(),
            "Container format name as reported by ffprobe (e.g. 'mov,mp4,m4a,3gp,3g2,mj2').",
        ),
        col("duration_s", pa.float64(), "Duration in seconds (null for still images)."),
        col("bit_rate", pa.int64(), "Overall bit rate in bits/s, when known."),
        col("n_audio_streams", pa.int32(), "Number of audio streams."),
        col("n_video_streams", pa.int32(), "Number of video streams (cover art excluded)."),
        col("n_subtitle_streams", pa.int32(), "Number of subtitle streams."),
        col("audio_codec", pa.string(), "Codec of the first audio stream."),
        col("audio_channels", pa.int32(), "Channels of the first audio stream."),
        col("audio_sample_rate", pa.int32(), "Sample rate (Hz) of the first audio stream."),
        col("video_codec", pa.string(), "Codec of the first video stream."),
        col(
            "width",
            pa.int32(),
            "Coded width in pixels of the first video stream (before rotation).",
        ),
        col(
            "height",
            pa.int32(),
            "Coded height in pixels of the first video stream (before rotation).",
        ),
        col("fps", pa.float64(), "Average frame rate (frames/s) of the first video stream."),
        col(
            "frame_count",
            pa.int64(),
            "Frame count from the container, else duration x fps (1 for images).",
        ),
        col(
            "rotation",
            pa.int32(),
            "Display rotation in degrees (0, 90, 180, 270) from the stream's display matrix.",
        ),
        col(
            "decade_rule",
            pa.string(),
            "Decade rule: sidecar, catalogue_csv, path_segment, filename_year or undated.",
        ),
        col(
            "decade_evidence",
            pa.string(),
            "What the rule used, e.g. 'sidecar recorded_date=1987-03-14', 'path segment 1990s/'.",
        ),
        col("title", pa.string(), "Title from the catalogue metadata."),
        col(
            "recorded_date",
            pa.string(),
            "Recording date from the catalogue metadata, as given (YYYY, YYYY-MM or YYYY-MM-DD).",
        ),
        col("year", pa.int32(), "Recording year from the catalogue metadata."),
        col(
            "language", pa.string(), "Language code from the catalogue metadata (e.g. 'en', 'de')."
        ),
        col(
            "speakers",
            pa.list_(pa.string()),
            "Speaker names from the catalogue metadata, in order.",
        ),
        col(
            "metadata_source",
            pa.string(),
            "'sidecar', 'catalogue_csv' or null when the item has no usable metadata.",
        ),
        col(
            "metadata_json",
            pa.string(),
            "The full metadata record as JSON (all sidecar/catalogue fields).",
        ),
        col(
            "metadata_warning",
            pa.string(),
            "Why metadata was ignored (malformed sidecar, bad date...), else null.",
        ),
        col(
            "aliases",
            pa.list_(pa.string()),
            "Other keys of the same file (symbolic links to it inside the store), else null.",
        ),
    ]
)

FAILURES = pa.schema(
    [
        *COMMON_COLUMNS,
        col(
            "stage",
            pa.string(),
            "Stage (asset) that failed on the item, e.g. 'media_catalog'.",
            nullable=False,
        ),
        col("uri", pa.string(), "Object URI of the failed item.", nullable=False),
        col("store_key", pa.string(), "Key of the object relative to the store root."),
        col(
            "error_class",
            pa.string(),
            "Error class, e.g. EmptyFileError, ProbeError, UnsupportedMediaError.",
            nullable=False,
        ),
        col("message", pa.string(), "Human-readable reason.", nullable=False),
    ]
)


STAGE_ITEMS = pa.schema(
    [
        *COMMON_COLUMNS,
        col("stage", pa.string(), "Stage (asset) that processed the item.", nullable=False),
        col("uri", pa.string(), "Object URI of the item.", nullable=False),
        col(
            "status",
            pa.string(),
            "'ok' (rows written, possibly none) or 'failed' (see failures).",
            nullable=False,
        ),
        col("n_rows", pa.int32(), "Rows the item produced in the stage's table."),
        col("compute_s", pa.float64(), "Seconds the stage spent on the item when it was computed."),
        col(
            "media_duration_s", pa.float64(), "Duration of the item's media in seconds, when known."
        ),
    ]
)

WORD = pa.struct(
    [
        pa.field("start", pa.float64()),
        pa.field("end", pa.float64()),
        pa.field("word", pa.string()),
        pa.field("probability", pa.float64()),
    ]
)
SPEAKER_WORD = pa.struct([*WORD, pa.field("speaker", pa.string())])

_SEGMENT_COLUMNS = (
    col(
        "uri",
        pa.string(),
        "Object URI of the media (first copy when the content is stored twice).",
        nullable=False,
    ),
    col(
        "segment_index", pa.int32(), "Position of the segment in the media, from 0.", nullable=False
    ),
    col(
        "start_s",
        pa.float64(),
        "Segment start, seconds from the start of the media.",
        nullable=False,
    ),
    col("end_s", pa.float64(), "Segment end, seconds from the start of the media.", nullable=False),
    col("text", pa.string(), "Recognised text of the segment.", nullable=False),
    col(
        "language",
        pa.string(),
        "Language code of this segment's speech, detected per speech span (the catalogue's "
        "language is a hint; ARCHIVE_WHISPER_LANGUAGE forces one). Its words share it.",
    ),
)

SUSPECT = col(
    "suspect",
    pa.string(),
    "Why the segment is likely a hallucination, else null: 'no_speech' (no-speech probability "
    "over 0.6 and log-probability under -1), 'repetition' (compression ratio over 2.4), "
    "'low_logprob' (under -1), 'unsure_short' (at most 2 words, mean word probability under "
    "0.5). Kept, flagged; left out of search_documents.",
)

TRANSCRIPTS = pa.schema(
    [
        *COMMON_COLUMNS,
        *_SEGMENT_COLUMNS,
        col(
            "language_probability",
            pa.float64(),
            "Probability of the segment's language from detection (1.0 when forced by "
            "ARCHIVE_WHISPER_LANGUAGE or by an English-only model).",
        ),
        col("avg_logprob", pa.float64(), "Average log probability of the segment's tokens."),
        col("no_speech_prob", pa.float64(), "Probability that the segment is not speech."),
        col("words", pa.list_(WORD), "Words with start/end seconds and probability."),
        col(
            "language_decision",
            pa.string(),
            "How `language` was chosen: 'dominant' (the item's language, catalogue's or most "
            "spoken), 'switched' (another language detected confidently on enough speech and "
            "decoding better in it), 'kept' (another language detected without that evidence: "
            "transcribed in the item's), 'forced' (ARCHIVE_WHISPER_LANGUAGE, English-only "
            "model), 'item' (per-span detection off); null in rows written before.",
        ),
        col(
            "detected_language",
            pa.string(),
            "The language Whisper's language head chose over the segment's span (the evidence "
            "a 'kept' segment was not switched on).",
        ),
        col("detected_probability", pa.float64(), "Probability of `detected_language`."),
        col(
            "compression_ratio",
            pa.float64(),
            "gzip compression ratio of the segment's text (over 2.4: it repeats itself).",
        ),
        SUSPECT,
    ]
)

SPEAKER_TURNS = pa.schema(
    [
        *COMMON_COLUMNS,
        col("uri", pa.string(), "Object URI of the media.", nullable=False),
        col("turn_index", pa.int32(), "Position of the turn in the media, from 0.", nullable=False),
        col(
            "start_s",
            pa.float64(),
            "Turn start, seconds from the start of the media.",
            nullable=False,
        ),
        col(
            "end_s", pa.float64(), "Turn end, seconds from the start of the media.", nullable=False
        ),
        col(
            "speaker",
            pa.string(),
            "Speaker label SPEAKER_00, SPEAKER_01... stable within one media item.",
            nullable=False,
        ),
        col(
            "speaker_name",
            pa.string(),
            "Name from the catalogue's speakers list, in order of first appearance, else null.",
        ),
        col(
            "embedding",
            pa.list_(pa.float32()),
            "Speaker embedding of the turn's audio (the diarisation model's, e.g. 192-d CAM++; "
            "null for turns under 0.5 s and for the resemblyzer backend): the same voice in "
            "other files is near.",
        ),
    ]
)

DIARISED_SEGMENTS = pa.schema(
    [
        *COMMON_COLUMNS,
        *_SEGMENT_COLUMNS,
        col(
            "speaker",
            pa.string(),
            "Speaker of the segment (a transcript segment is split where the speaker changes).",
        ),
        col("speaker_name", pa.string(), "Name from the catalogue's speakers list, else null."),
        col(
            "source_segment_index",
            pa.int32(),
            "transcripts.segment_index this segment was cut from.",
        ),
        col(
            "words",
            pa.list_(SPEAKER_WORD),
            "Words with times, probability and their speaker (assigned by time overlap).",
        ),
        SUSPECT,
    ]
)


SHOTS = pa.schema(
    [
        *COMMON_COLUMNS,
        col("uri", pa.string(), "Object URI of the video.", nullable=False),
        col("shot_index", pa.int32(), "Position of the shot in the video, from 0.", nullable=False),
        col(
            "start_frame",
            pa.int64(),
            "First frame of the shot (0-based, decode order).",
            nullable=False,
        ),
        col("end_frame", pa.int64(), "Last frame of the shot (inclusive).", nullable=False),
        col(
            "start_s",
            pa.float64(),
            "Shot start: presentation time of its first frame, seconds.",
            nullable=False,
        ),
        col(
            "end_s",
            pa.float64(),
            "Shot end: presentation time of the next shot's first frame, seconds.",
            nullable=False,
        ),
        col(
            "boundary_score",
            pa.float64(),
            "TransNetV2 transition probability at the shot's start (null for PySceneDetect).",
        ),
    ]
)


SEARCH_DOCUMENTS = pa.schema(
    [
        *COMMON_COLUMNS,
        col(
            "kind",
            pa.string(),
            "'speech' (one diarised segment) or 'keyframe' (one passage of a keyframe's or page's "
            "text: a paragraph, a few sentences; the first also holds the speech overlapping the "
            "keyframe's span). BITMAP-indexed.",
            nullable=False,
        ),
        col("uri", pa.string(), "Object URI of the media.", nullable=False),
        col("title", pa.string(), "Title from the catalogue metadata, else null."),
        col(
            "source_id",
            pa.string(),
            "`diarised_segments.row_id` (speech) or `keyframes.row_id` (a keyframe's first "
            "passage; `<keyframes.row_id>#<n>` for its n-th passage after that).",
            nullable=False,
        ),
        col(
            "start_s",
            pa.float64(),
            "Segment start, or start of the keyframe's span (the part of its shot it stands for: "
            "from half-way to the previous keyframe of the shot, or the shot start), seconds.",
            nullable=False,
        ),
        col(
            "end_s",
            pa.float64(),
            "Segment end, or end of the keyframe's span, seconds.",
            nullable=False,
        ),
        col(
            "time_s",
            pa.float64(),
            "Where a player should jump: the segment start, or the keyframe's own frame time "
            "(deep link `<uri>#t=<time_s>`).",
            nullable=False,
        ),
        col(
            "speaker",
            pa.string(),
            "Speaker label of the segment, or of whoever speaks most in the keyframe's span.",
        ),
        col("speaker_name", pa.string(), "Name of that speaker from the catalogue, else null."),
        col(
            "text",
            pa.string(),
            "The searchable text (BM25 full-text index): the segment's words, or the keyframe's "
            "on-screen text and then the speech overlapping its span.",
            nullable=False,
        ),
        col(
            "ocr_text",
            pa.string(),
            "The passage of text read on the keyframe or page (search form: long s as s; lines "
            "joined, a word hyphenated at a line end joined again), else null.",
        ),
        col(
            "speech_text",
            pa.string(),
            "Speech overlapping the keyframe's span (null for speech rows: see `text`).",
        ),
        col(
            "language",
            pa.string(),
            "Language of the text (routes it to `text_de` / `text_en`): of the speech (detected "
            "or catalogued), or of the on-screen or page text (`frame_text.language`) where that "
            "is the larger part; else null.",
        ),
        col(
            "keyframe_id",
            pa.string(),
            "Thumbnail reference: `keyframes.row_id` of the keyframe (for a speech segment of a "
            "video, the keyframe on screen at its middle); null for audio.",
        ),
        col(
            "vector",
            pa.list_(pa.float32()),
            "Text embedding of `text` (model `model_id`), L2-normalised, fixed size per table "
            "(512 for the default multilingual USE, 384 for all-MiniLM-L6-v2); null when the "
            "text was not embedded. Vector-indexed (cosine) once the table is large enough.",
        ),
        col(
            "image_model_id",
            pa.string(),
            "Image-text model of `image_vector` (null when none is configured).",
        ),
        col(
            "image_vector",
            pa.list_(pa.float32()),
            "Keyframe image embedding in the same space as `vector` (an OpenCLIP model embeds "
            "both), for text-to-frame search; null unless an image-text model is configured.",
        ),
        col(
            "text_en",
            pa.string(),
            "`text` of a document that is not German (English or undetermined), else null: "
            "full-text indexed with English stemming and stop words.",
        ),
        col(
            "text_de",
            pa.string(),
            "`text` of a German document (`language` 'de'), else null: full-text indexed with "
            "German stemming and stop words, so 'Grenzen' finds 'Grenze'. Search matches both.",
        ),
        # added later (nullable, last: a table written before gains them on open)
        col(
            "page",
            pa.int32(),
            "Page of a still image (1 for a photo or the first page of a scan), else null.",
        ),
        col(
            "region",
            pa.list_(pa.float32(), 4),
            "Where the passage is on the frame or page: x0, y0, x1, y1 as fractions of its width "
            "and height (null for speech and for keyframes without text).",
        ),
    ]
)


@dataclass(frozen=True)
class TableSpec:
    """A table of the warehouse: name, schema and what one row is."""

    name: str
    schema: pa.Schema
    row: str
    partition_scope: tuple[str, ...] = ("decade",)
    # fixed-size float32 vector columns whose length depends on the model (one length per table)
    vector_columns: tuple[str, ...] = ()

    def schema_for(self, dim: int | None) -> pa.Schema:
        """The schema with its vector columns fixed at `dim` (the contract schema if None)."""
        if dim is None or not self.vector_columns:
            return self.schema
        schema = self.schema
        for name in self.vector_columns:
            index = schema.get_field_index(name)
            field = schema.field(index)
            fixed = pa.field(name, pa.list_(pa.float32(), dim), field.nullable, field.metadata)
            schema = schema.set(index, fixed)
        return schema


REPLACED = pa.struct(
    [
        pa.field("shot_index", pa.int32()),
        pa.field("frame_index", pa.int64()),
        pa.field("time_s", pa.float64()),
        pa.field("hash_distance", pa.int32()),
        pa.field("changed_fraction", pa.float64()),
    ]
)

KEYFRAMES = pa.schema(
    [
        *COMMON_COLUMNS,
        col("uri", pa.string(), "Object URI of the video or still image.", nullable=False),
        col(
            "keyframe_index",
            pa.int32(),
            "Position of the keyframe in the video (time order, after duplicate removal), from 0.",
            nullable=False,
        ),
        col("shot_index", pa.int32(), "Shot it belongs to (`shots.shot_index`).", nullable=False),
        col("frame_index", pa.int64(), "Frame number (0-based, decode order).", nullable=False),
        col(
            "time_s",
            pa.float64(),
            "Presentation time of the frame, seconds (deep link: `<uri>#t=<time_s>`).",
            nullable=False,
        ),
        col(
            "phash",
            pa.string(),
            "64-bit perceptual hash (imagehash.phash), 16 hex digits; near-duplicates differ in "
            "few bits.",
            nullable=False,
        ),
        col(
            "thumbnail",
            pa.binary(),
            "Thumbnail image bytes (JPEG or WebP, upright, about 320 px wide), stored inline.",
            nullable=False,
        ),
        col("thumbnail_format", pa.string(), "'jpeg' or 'webp'.", nullable=False),
        col("thumbnail_width", pa.int32(), "Thumbnail width, pixels.", nullable=False),
        col("thumbnail_height", pa.int32(), "Thumbnail height, pixels.", nullable=False),
        col(
            "full_frame",
            pa.binary(),
            "Full-size frame as JPEG when full_frames (ARCHIVE_KEYFRAME_OPTIONS) is on, else null.",
        ),
        col(
            "replaces",
            pa.list_(REPLACED),
            "Near-duplicate keyframes (of this video) dropped in favour of this one: their shot, "
            "frame, time, pHash distance and fraction of changed pixels (a duplicate needs both "
            "the pHash within dedup_distance bits and at most 1% of pixels changed).",
            nullable=False,
        ),
        col(
            "reason",
            pa.string(),
            "Why the frame is a keyframe: 'shot' (a shot's keyframe, one per interval of a long "
            "shot), 'text' (on-screen text the shot's other keyframes do not show: text-aware "
            "sampling) or 'page' (a page of a still image: photo, scan, one page of a multi-page "
            "TIFF; shot_index and frame_index are the page, time_s 0). Null in rows written "
            "before the column existed.",
        ),
    ]
)

FRAME_TEXT = pa.schema(
    [
        *COMMON_COLUMNS,
        col("uri", pa.string(), "Object URI of the video or still image.", nullable=False),
        col("keyframe_id", pa.string(), "`keyframes.row_id` of the frame read.", nullable=False),
        col("keyframe_index", pa.int32(), "`keyframes.keyframe_index`.", nullable=False),
        col("shot_index", pa.int32(), "`keyframes.shot_index`.", nullable=False),
        col("time_s", pa.float64(), "Presentation time of the frame, seconds.", nullable=False),
        col(
            "line_index",
            pa.int32(),
            "Position of the line in the frame (reading order: top to bottom, left to right).",
            nullable=False,
        ),
        col(
            "text",
            pa.string(),
            "Recognised text of the line as printed (diplomatic: a long s is ſ): of a video, the "
            "most confident reading of the same line on consecutive keyframes (box overlapping, "
            "reading alike); an unsure line is read again from an upscaled crop.",
            nullable=False,
        ),
        col(
            "confidence",
            pa.float64(),
            "Recogniser confidence of that reading, 0-1.",
            nullable=False,
        ),
        col(
            "box",
            pa.list_(pa.float32(), 8),
            "Line polygon in full-frame pixels of the upright frame: x1,y1,...,x4,y4 clockwise "
            "from top left.",
            nullable=False,
        ),
        col(
            "language",
            pa.string(),
            "Language of the line's text (ISO 639-1): ARCHIVE_OCR_LANGUAGE when it names one, "
            "else detected (py3langid, more likely than not) in the line, or else in all the text "
            "of the image; 'und' when neither is clear. (Rows written before detection: the "
            "setting's code.)",
            nullable=False,
        ),
        # added later (nullable, last: a table written before gains them on open)
        col("image_width", pa.int32(), "Width of the image read (the box's frame), pixels."),
        col("image_height", pa.int32(), "Height of the image read, pixels."),
        col(
            "normalised",
            pa.string(),
            "Search form of `text` (what documents index): long s as s, ligatures as letters, e "
            "above a vowel as its umlaut. Null in rows written before the column existed.",
        ),
        col(
            "script",
            pa.string(),
            "'Fraktur' where the image is historic print (read by Tesseract's Fraktur model, ſ "
            "kept in `text`), else 'Latin'. Null in rows written before the column existed.",
        ),
    ]
)

KEYFRAME_EMBEDDINGS = pa.schema(
    [
        *COMMON_COLUMNS,
        col("uri", pa.string(), "Object URI of the video or still image.", nullable=False),
        col("keyframe_id", pa.string(), "`keyframes.row_id` of the image.", nullable=False),
        col("keyframe_index", pa.int32(), "`keyframes.keyframe_index`.", nullable=False),
        col("time_s", pa.float64(), "Presentation time of the frame, seconds.", nullable=False),
        col("dim", pa.int32(), "Vector length (depends on `model_id`).", nullable=False),
        col(
            "vector",
            pa.list_(pa.float32()),
            "L2-normalised image embedding (OpenCLIP image tower); compare only with vectors of "
            "the same `model_id`.",
            nullable=False,
        ),
    ]
)

SEGMENT_EMBEDDINGS = pa.schema(
    [
        *COMMON_COLUMNS,
        col("uri", pa.string(), "Object URI of the media.", nullable=False),
        col(
            "source",
            pa.string(),
            "'speech' (a diarised_segments row) or 'keyframe' (a keyframe's document: the text "
            "read on it plus the speech overlapping its span, as in `search_documents`).",
            nullable=False,
        ),
        col(
            "source_id",
            pa.string(),
            "`diarised_segments.row_id`, or `search_documents.source_id` of the keyframe "
            "passage embedded (`keyframes.row_id`, `#<n>` after it for a later passage).",
            nullable=False,
        ),
        col("start_s", pa.float64(), "Start of the segment or of the keyframe's span, seconds."),
        col("end_s", pa.float64(), "End of the segment or of the keyframe's span, seconds."),
        col(
            "speaker",
            pa.string(),
            "Speaker (name, else label) of a segment, or who speaks most in a keyframe's span.",
        ),
        col("text", pa.string(), "The text embedded.", nullable=False),
        col("dim", pa.int32(), "Vector length (depends on `model_id`).", nullable=False),
        col(
            "vector",
            pa.list_(pa.float32()),
            "L2-normalised text embedding; with an OpenCLIP model it shares the space of "
            "`keyframe_embeddings` of the same model.",
            nullable=False,
        ),
    ]
)

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec("media_catalog", MEDIA_CATALOG, "media object in the store"),
        TableSpec(
            "failures",
            FAILURES,
            "item that a stage could not process",
            partition_scope=("decade", "stage"),
        ),
        TableSpec(
            "stage_items",
            STAGE_ITEMS,
            "item a stage processed: the incremental cache's ledger (empty results count)",
            partition_scope=("decade", "stage"),
        ),
        TableSpec("transcripts", TRANSCRIPTS, "speech segment recognised by Whisper"),
        TableSpec("speaker_turns", SPEAKER_TURNS, "speaker turn (who spoke when)"),
        TableSpec("shots", SHOTS, "shot of a video (between two cuts)"),
        TableSpec("keyframes", KEYFRAMES, "representative frame of a shot, with its thumbnail"),
        TableSpec("frame_text", FRAME_TEXT, "line of text read on a keyframe (OCR)"),
        TableSpec(
            "keyframe_embeddings",
            KEYFRAME_EMBEDDINGS,
            "keyframe embedded by an image-text model (none unless one is configured)",
        ),
        TableSpec(
            "segment_embeddings",
            SEGMENT_EMBEDDINGS,
            "speech segment or keyframe text embedded by a text model",
        ),
        TableSpec(
            "diarised_segments",
            DIARISED_SEGMENTS,
            "transcript segment (or part of one) attributed to one speaker",
        ),
        TableSpec(
            "search_documents",
            SEARCH_DOCUMENTS,
            "retrievable unit: a speech segment or a keyframe",
            vector_columns=("vector", "image_vector"),
        ),
    )
}


def describe(field: pa.Field) -> str:
    """Return a field's description from its metadata."""
    return (field.metadata or {}).get(DESCRIPTION_KEY, b"").decode()
