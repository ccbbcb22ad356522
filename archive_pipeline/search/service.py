"""`archive-search serve`: the search API, thumbnails, media with Range and the search page over
HTTP (FastAPI on uvicorn, 127.0.0.1 by default).

One process holds one `Searcher` (the query embedder loaded once, at start) and reads the Lance
tables directly; a decade committed while it runs is searched within `refresh_s` (10 s).
`/media` streams only catalogued items, by the catalogue's store key, from the local inbox or S3,
with HTTP Range so a browser can seek; nothing else on disk can be reached through it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import mimetypes
import re
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from archive_pipeline import settings as app_settings
from archive_pipeline.core.decades import PARTITION_KEYS
from archive_pipeline.core.images import ImageDecodeError
from archive_pipeline.core.store import Store
from archive_pipeline.core.warehouse import sql_literal
from archive_pipeline.search.documents import KINDS
from archive_pipeline.search.query import (
    MAX_LIMIT,
    MAX_QUERY_CHARS,
    MODES,
    SCORE_MEANINGS,
    Searcher,
    SearchError,
)

log = logging.getLogger(__name__)

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$"  # media and keyframe ids: no slashes
THUMBNAIL_TYPES = {
    "jpeg": "image/jpeg",
    "jpg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
}
# containers browsers play that mimetypes may not know
MEDIA_TYPES = {
    ".opus": "audio/ogg",
    ".oga": "audio/ogg",
    ".ogg": "audio/ogg",
    ".flac": "audio/flac",
    ".m4a": "audio/mp4",
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".ts": "video/mp2t",
    ".mts": "video/mp2t",
}
CATALOG_COLUMNS = [
    "media_id",
    "decade",
    "uri",
    "store_key",
    "kind",
    "title",
    "container",
    "duration_s",
    "size_bytes",
    "sha256",
    "width",
    "height",
    "recorded_date",
    "year",
    "language",
    "speakers",
    "decade_rule",
    "decade_evidence",
    "metadata_warning",
]
STAGE_COLUMNS = ["stage", "status", "n_rows", "compute_s", "created_at", "decade"]
FAILURE_COLUMNS = ["stage", "error_class", "message", "created_at", "decade"]
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
# still images a browser shows itself; others (TIFF scans...) are shown as a JPEG rendition
BROWSER_IMAGES = {"image/jpeg", "image/png", "image/webp", "image/gif", "image/avif"}
PAGE_PIXELS = 2000  # a page rendition's long side at most, pixels
PAGE_CACHE = 32  # page renditions kept in memory


class Unsatisfiable(ValueError):
    """A Range header outside the object (answered 416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive of a single `bytes=` range, None for the whole object (no header,
    or one this server does not split: several ranges are answered with the whole object)."""
    if not header:
        return None
    found = RANGE.match(header.strip().replace(" ", ""))
    if not found:
        if header.strip().startswith("bytes=") and "," in header:
            return None
        raise Unsatisfiable(f"bad Range header {header!r}")
    first, last = found.groups()
    if not first and not last:
        raise Unsatisfiable(f"bad Range header {header!r}")
    if not first:  # the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise Unsatisfiable("empty suffix range")
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise Unsatisfiable(f"range {header!r} outside the {size} bytes")
    return start, end


def _json_safe(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return None
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


@dataclass
class Archive:
    """The tables the service reads besides search_documents (catalogue, keyframes, stage
    status, failures), through the searcher's connection, and the media store."""

    searcher: Searcher
    store: Store
    _pages: dict[tuple, bytes] = field(default_factory=dict)  # page renditions, oldest first

    def _rows(self, name: str, columns: list[str], where: str) -> list[dict]:
        table = self.searcher.open_table(name)
        if table is None:
            return []
        return table.to_lance().to_table(columns=columns, filter=where).to_pylist()

    def catalog(self, media_ids: list[str]) -> dict[str, dict]:
        """Catalogue rows by media_id."""
        if not media_ids:
            return {}
        listed = ", ".join(sql_literal(m) for m in sorted(set(media_ids)))
        rows = self._rows("media_catalog", CATALOG_COLUMNS, f"media_id IN ({listed})")
        return {row["media_id"]: row for row in rows}

    def page_image(self, media_id: str, page: int) -> tuple[bytes, str] | None:
        """(JPEG bytes, ETag) of one page of a catalogued still image, whole and upright, at
        most PAGE_PIXELS on its long side; None when the item has no such page. Renditions are
        kept for the last PAGE_CACHE pages asked for (keyed by the file's content)."""
        row = self.catalog([media_id]).get(media_id)
        if row is None or row.get("kind") != "image" or page < 1:
            return None
        key = (row["store_key"], row.get("sha256") or "", page)
        if key not in self._pages:
            rendition = self._render(row["store_key"], page)
            if rendition is None:
                return None
            self._pages[key] = rendition
            while len(self._pages) > PAGE_CACHE:
                self._pages.pop(next(iter(self._pages)))
        etag = f'"{hashlib.sha1(repr(key).encode()).hexdigest()[:20]}"'
        return self._pages[key], etag

    def _render(self, store_key: str, page: int) -> bytes | None:
        import io

        from PIL import Image

        from archive_pipeline.core.images import iter_pages

        with self.store.local_path(store_key) as path:
            for index, pixels in iter_pages(path):
                if index + 1 == page:
                    image = Image.fromarray(pixels)
                    image.thumbnail((PAGE_PIXELS, PAGE_PIXELS), Image.Resampling.LANCZOS)
                    out = io.BytesIO()
                    image.save(out, "JPEG", quality=85)
                    return out.getvalue()
        return None

    def thumbnail(self, keyframe_id: str) -> tuple[bytes, str] | None:
        """(image bytes, format) of a keyframe."""
        rows = self._rows(
            "keyframes",
            ["thumbnail", "thumbnail_format"],
            f"row_id = {sql_literal(keyframe_id)}",
        )
        return (rows[0]["thumbnail"], rows[0]["thumbnail_format"]) if rows else None

    def item(self, media_id: str) -> dict | None:
        """Catalogue row, per-stage status and failures of one item."""
        row = self.catalog([media_id]).get(media_id)
        if row is None:
            return None
        where = f"media_id = {sql_literal(media_id)}"
        stages = sorted(self._rows("stage_items", STAGE_COLUMNS, where), key=lambda r: r["stage"])
        failures = self._rows("failures", FAILURE_COLUMNS, where)
        return _json_safe({"catalog": row, "stages": stages, "failures": failures})


def media_type(store_key: str) -> str:
    """The Content-Type of a media file, by its extension."""
    suffix = "." + store_key.rsplit(".", 1)[-1].lower() if "." in store_key else ""
    return (
        MEDIA_TYPES.get(suffix) or mimetypes.guess_type(store_key)[0] or "application/octet-stream"
    )


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(searcher: Searcher, store: Store, *, warm: bool = True) -> FastAPI:
    """The service: the JSON API, thumbnails, media and the page at `/`. `warm`: open the
    table and load the query embedder at start (else on the first query)."""
    archive = Archive(searcher, store)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if warm:
            start = time.perf_counter()
            try:
                _ = searcher.table
                searcher.embed("warm up")
                log.info("search service ready in %.1f s", time.perf_counter() - start)
            except SearchError as exc:  # nothing materialised yet: /healthz says so
                log.warning("search service started without an index: %s", exc)
        yield

    app = FastAPI(
        title="archive_pipeline search",
        version="1",
        description="Search the archive's transcripts, speakers, on-screen text and keyframes; "
        "play the media at the hit. Errors are JSON objects with an `error` message.",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI loads its scripts from a CDN; /openapi.json describes the API
        redoc_url=None,
    )

    @app.exception_handler(SearchError)
    async def search_error(_request: Request, exc: SearchError):
        return _error(400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(_request: Request, exc: RequestValidationError):
        problems = [
            f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}"
            for e in exc.errors()
        ]
        return _error(400, "; ".join(problems))

    @app.exception_handler(StarletteHTTPException)  # FastAPI's and the router's (404, 405)
    async def http_error(_request: Request, exc: StarletteHTTPException):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        log.exception("%s %s failed", request.method, request.url.path)
        return _error(500, "internal error (details are in the service's log)")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        html = files("archive_pipeline.search").joinpath("static/index.html").read_text()
        return HTMLResponse(html, headers={"Cache-Control": "no-cache"})

    @app.get("/healthz", summary="Liveness and the searched table's version")
    def healthz():
        try:
            table = searcher.table
            version, rows = table.version, table.count_rows()
        except SearchError as exc:
            return JSONResponse({"status": "unavailable", "error": str(exc)}, status_code=503)
        return {"status": "ok", "search_documents": {"version": version, "rows": rows}}

    @app.get("/options", summary="What the filters accept (modes, kinds, decades, speakers)")
    def options():
        return {
            "modes": list(MODES),
            "kinds": list(KINDS),
            "decades": list(PARTITION_KEYS),
            "speakers": searcher.known_speakers()[:1000],
            "min_similarity": searcher.min_similarity,
            "score_meanings": SCORE_MEANINGS,
            "max_limit": MAX_LIMIT,
        }

    @app.get("/search", summary="Search speech, on-screen text, keyframes and titles")
    def search(
        q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="query")],
        mode: Annotated[str, Query(description=f"one of {', '.join(MODES)}")] = "hybrid",
        decade: Annotated[list[str] | None, Query(description="repeatable, e.g. 1980s")] = None,
        kind: Annotated[list[str] | None, Query(description="speech or keyframe")] = None,
        speaker: Annotated[str | None, Query(max_length=200)] = None,
        language: Annotated[list[str] | None, Query(description="ISO 639: de, en")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 10,
        dates: Annotated[bool, Query(description='read "in 1989" as a decade filter')] = True,
    ):
        start = time.perf_counter()
        results = searcher.search(
            query=q,
            mode=mode,
            decades=decade,
            kinds=kind,
            speaker=speaker,
            languages=language,
            limit=limit,
            temporal=dates,
            thumbnails=False,
        )
        catalog = archive.catalog([hit.media_id for hit in results.hits])
        data = results.to_dict()
        for hit in data["hits"]:
            row = catalog.get(hit["media_id"], {})
            hit["media_kind"] = row.get("kind")
            hit["file"] = row.get("store_key")
            hit["media_url"] = f"/media/{hit['media_id']}"
            hit["player_url"] = f"/media/{hit['media_id']}#t={hit['time_s']:.2f}"
            hit["item_url"] = f"/items/{hit['media_id']}"
            hit["thumbnail_url"] = (
                f"/thumbnails/{hit['keyframe_id']}" if hit["keyframe_id"] else None
            )
            # a page of a still: the whole page, viewable (the passage's region is in the hit)
            hit["page_url"] = f"/pages/{hit['media_id']}/{hit['page']}" if hit["page"] else None
        data["score_meaning_text"] = SCORE_MEANINGS[results.score_meaning]
        data["took_ms"] = round((time.perf_counter() - start) * 1000, 1)
        return data

    @app.get("/pages/{media_id}/{page}", summary="A page of a still image or scan, as JPEG")
    def page_image(
        media_id: Annotated[str, _id_path()],
        page: Annotated[int, PathParam(ge=1, le=100_000, description="page, from 1")],
        if_none_match: Annotated[str | None, Header()] = None,
    ):
        try:
            found = archive.page_image(media_id, page)
        except ImageDecodeError as exc:
            raise HTTPException(422, f"the image cannot be shown: {exc}") from None
        if found is None:
            raise HTTPException(404, f"no page {page} of a still image {media_id}")
        data, etag = found
        headers = {"ETag": etag, "Cache-Control": "private, max-age=300"}
        if if_none_match and etag in if_none_match:
            return Response(status_code=304, headers=headers)
        return Response(data, media_type="image/jpeg", headers=headers)

    @app.get("/thumbnails/{keyframe_id}", summary="A keyframe's thumbnail image")
    def thumbnail(
        keyframe_id: Annotated[str, _id_path()],
        if_none_match: Annotated[str | None, Header()] = None,
    ):
        found = archive.thumbnail(keyframe_id)
        if found is None:
            raise HTTPException(404, f"no keyframe {keyframe_id}")
        data, fmt = found
        etag = f'"{hashlib.sha1(data).hexdigest()[:20]}"'
        headers = {"ETag": etag, "Cache-Control": "public, max-age=86400"}
        if if_none_match and etag in if_none_match:
            return Response(status_code=304, headers=headers)
        return Response(
            data, media_type=THUMBNAIL_TYPES.get(fmt, "application/octet-stream"), headers=headers
        )

    def media(
        media_id: Annotated[str, _id_path()],
        request: Request,
        range_header: Annotated[str | None, Header(alias="range")] = None,
        original: Annotated[
            bool, Query(description="a scan's own file (TIFF...), not its viewable page")
        ] = False,
    ):
        row = archive.catalog([media_id]).get(media_id)
        if row is None:
            raise HTTPException(404, f"no catalogued item {media_id}")
        key = row["store_key"]
        if row.get("kind") == "image" and media_type(key) not in BROWSER_IMAGES and not original:
            # a browser would download a TIFF scan: show its first page instead
            return RedirectResponse(f"/pages/{media_id}/1", status_code=303)
        if key.startswith("/") or ".." in key.split("/"):
            raise HTTPException(403, f"{key} lies outside the store")
        try:
            stored = store.stat(key)
        except ValueError:
            raise HTTPException(403, f"{key} lies outside the store") from None
        except Exception as exc:
            if _missing(exc):
                raise HTTPException(404, f"{key} is no longer in the store") from None
            raise
        if stored.problem:
            raise HTTPException(403, f"{key} cannot be served: {stored.problem[1]}")
        size = stored.size
        headers = {
            "Accept-Ranges": "bytes",
            "Cache-Control": "private, max-age=300",
            "Content-Disposition": f'inline; filename="{key.rsplit("/", 1)[-1]}"',
        }
        if row.get("sha256"):
            headers["ETag"] = f'"{row["sha256"][:32]}"'
        try:
            span = parse_range(range_header, size)
        except Unsatisfiable as exc:
            headers["Content-Range"] = f"bytes */{size}"
            return JSONResponse({"error": str(exc)}, status_code=416, headers=headers)
        start, end = span or (0, size - 1)
        headers["Content-Length"] = str(max(0, end - start + 1))
        status = 206 if span else 200
        if span:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        kind = media_type(key)
        if request.method == "HEAD" or size == 0:
            return Response(status_code=status, headers=headers, media_type=kind)
        try:
            body = store.read_range(key, start, end)
        except ValueError:
            raise HTTPException(403, f"{key} lies outside the store") from None
        return StreamingResponse(body, status_code=status, headers=headers, media_type=kind)

    summary = "The item's media (HTTP Range: 206 with the bytes asked for)"
    app.add_api_route("/media/{media_id}", media, methods=["GET"], summary=summary)
    app.add_api_route("/media/{media_id}", media, methods=["HEAD"], include_in_schema=False)

    @app.get("/items/{media_id}", summary="An item's catalogue row, stage status and failures")
    def item(media_id: Annotated[str, _id_path()]):
        found = archive.item(media_id)
        if found is None:
            raise HTTPException(404, f"no catalogued item {media_id}")
        found["media_url"] = f"/media/{media_id}"
        return found

    return app


def _missing(exc: Exception) -> bool:
    """Whether a store error means the object is gone (a local file, or S3's 404)."""
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return isinstance(exc, FileNotFoundError) or code in ("404", "NoSuchKey", "NotFound")


def _id_path():
    return PathParam(pattern=ID_PATTERN, description="an id from a search hit")


def serve(*, host: str | None = None, port: int | None = None, warm: bool = True) -> None:
    """Run the service on the configured archive until interrupted (host and port: the
    ARCHIVE_SEARCH_HOST / _PORT settings unless given)."""
    import uvicorn

    from archive_pipeline.core.store import open_store
    from archive_pipeline.search.query import default_searcher

    where = app_settings.resolve("search_service", {"host": host, "port": port})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    store = open_store()
    app = create_app(default_searcher(), store, warm=warm)
    uvicorn.run(app, host=where.host, port=where.port, log_level="info", access_log=False)
