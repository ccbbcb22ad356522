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
import unicodedata
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Annotated, Any
from urllib.parse import quote

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

from archive_pipeline.config import settings as app_settings
from archive_pipeline.core.decades import PARTITION_KEYS
from archive_pipeline.core.images import ImageDecodeError
from archive_pipeline.core.store import Store
from archive_pipeline.core.warehouse import sql_literal
from archive_pipeline.search import api
from archive_pipeline.search.documents import KINDS
from archive_pipeline.search.query import (
    MAX_LIMIT,
    MAX_QUERY_CHARS,
    MODES,
    SCORE_MEANINGS,
    Searcher,
    SearchError,
    SearchUnavailable,
)
from archive_pipeline.search.results import MOMENTS, SORTS, result_page
from archive_pipeline.search.syntax import highlights, parse

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
RANGE = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$")  # longer numbers exceed any file
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


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header matches the ETag (RFC 9110: `*`, a list, weak
    comparison)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag.removeprefix("W/") in tags


def content_disposition(file_name: str) -> str:
    """`inline` with the file's name: an ASCII fallback in `filename` and the exact name in
    RFC 5987's `filename*` (Gdańsk_Łódź_1974.flac, names with quotes)."""
    fallback = (
        unicodedata.normalize("NFKD", file_name).encode("ascii", "ignore").decode() or "media"
    )
    fallback = re.sub(r'["\\\x00-\x1f\x7f]', "_", fallback)
    return f"inline; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"


class Guard:
    """ASGI middleware around the whole service: answers a Host it does not serve with 400
    (a page elsewhere cannot reach the service through DNS rebinding), and any error with a
    JSON 500 that keeps the connection open (the error is logged, never sent)."""

    def __init__(self, app, *, allowed_hosts: list[str]) -> None:
        self.app = app
        self.any_host = "*" in allowed_hosts
        self.allowed = {h.strip().lower().strip("[]") for h in allowed_hosts if h.strip()}

    def host_allowed(self, scope) -> bool:
        """Whether the request's Host header names this service."""
        if self.any_host:
            return True
        host = ""
        for name, value in scope.get("headers") or []:
            if name == b"host":
                host = value.decode("latin-1").strip().lower()
        if host.startswith("["):  # [::1]:8765
            host = host[1 : host.find("]")] if "]" in host else host
        else:
            host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        return host in self.allowed

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if not self.host_allowed(scope):
            response = _error(400, "this service does not answer for that Host header")
            return await response(scope, receive, send)
        started = False

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if not started:
                response = _error(500, "internal error (details are in the service's log)")
                await response(scope, receive, send)
            else:  # the body was under way: end it (the client sees a short body)
                await send({"type": "http.response.body", "body": b"", "more_body": False})


SEARCH_PARAMETERS = {
    "q",
    "mode",
    "decade",
    "kind",
    "speaker",
    "language",
    "media",
    "sort",
    "offset",
    "limit",
    "dates",
}
MAX_GROUPS = 100  # offset + limit: results past the first 100 items are not paged
SYNTAX = {
    "words": "ranked by BM25: more of them, and rarer ones, rank higher",
    '"a phrase"': "the words in this order",
    "prefix*": "words beginning so (2+ letters)",
    '-word, -"a phrase"': "leave out what holds it",
    "a OR b": "either; needed where a phrase is among them",
    "in 1989, the eighties": "a decade filter (dates=false: words)",
}


def create_app(
    searcher: Searcher,
    store: Store,
    *,
    warm: bool = True,
    allowed_hosts: list[str] | None = None,
) -> FastAPI:
    """The service: the JSON API, thumbnails, media and the page at `/`. `warm`: open the
    table and load the query embedder at start (else on the first query); `allowed_hosts`:
    the Host names answered (default ARCHIVE_SEARCH_ALLOWED_HOSTS)."""
    archive = Archive(searcher, store)
    if allowed_hosts is None:
        configured = app_settings.resolve("search_service").allowed_hosts
        allowed_hosts = [h for h in configured.split(",") if h.strip()]

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
        version="2",
        description="Search the archive's transcripts, speakers, on-screen text and keyframes; "
        "play the media at the hit. Errors are JSON objects with an `error` message: 400 for a "
        "parameter the service cannot use, 404 for what does not exist, 503 while there is "
        "nothing to search. Query syntax: see `/options` (`syntax`).",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI loads its scripts from a CDN; /openapi.json describes the API
        redoc_url=None,
    )
    app.add_middleware(Guard, allowed_hosts=allowed_hosts)

    @app.exception_handler(SearchUnavailable)
    async def unavailable(_request: Request, exc: SearchUnavailable):
        return _error(503, str(exc), {"Retry-After": "60"})

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
        return _error(exc.status_code, str(exc.detail), exc.headers)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        html = files("archive_pipeline.search").joinpath("static/index.html").read_text()
        return HTMLResponse(html, headers={"Cache-Control": "no-cache"})

    @app.get(
        "/healthz",
        summary="Liveness and the searched table's version",
        response_model=api.Health,
        responses={503: {"model": api.Health, "description": "nothing to search yet"}},
    )
    def healthz():
        try:
            table = searcher.table
            version, rows = table.version, table.count_rows()
        except SearchError as exc:
            return JSONResponse({"status": "unavailable", "error": str(exc)}, status_code=503)
        return {"status": "ok", "search_documents": {"version": version, "rows": rows}}

    @app.get(
        "/options",
        summary="What the parameters accept (modes, kinds, decades, languages, speakers)",
        response_model=api.Options,
        responses=api.ERRORS,
    )
    def options():
        return {
            "modes": list(MODES),
            "kinds": list(KINDS),
            "sorts": list(SORTS),
            "decades": [d for d in PARTITION_KEYS if d in set(searcher.known_values("decade"))],
            "languages": searcher.known_values("language"),
            "speakers": searcher.known_speakers()[:1000],
            "min_similarity": searcher.min_similarity,
            "score_meanings": SCORE_MEANINGS,
            "max_limit": MAX_GROUPS,
            "syntax": SYNTAX,
        }

    @app.get(
        "/search",
        summary="Search speech, on-screen text, keyframes and titles; results per item",
        response_model=api.SearchResponse,
        responses=api.ERRORS,
    )
    def search(
        request: Request,
        q: Annotated[
            str,
            Query(
                min_length=1,
                max_length=MAX_QUERY_CHARS,
                description='words, "phrases", prefix*, -exclude, OR (see /options)',
            ),
        ],
        mode: Annotated[str, Query(description=f"one of {', '.join(MODES)}")] = "hybrid",
        decade: Annotated[list[str] | None, Query(description="repeatable, e.g. 1980s")] = None,
        kind: Annotated[list[str] | None, Query(description="speech or keyframe")] = None,
        speaker: Annotated[str | None, Query(max_length=200)] = None,
        language: Annotated[list[str] | None, Query(description="ISO 639: de, en")] = None,
        media: Annotated[
            list[str] | None, Query(description="only these items: all their moments")
        ] = None,
        sort: Annotated[str, Query(description=f"one of {', '.join(SORTS)}")] = "relevance",
        offset: Annotated[int, Query(ge=0, le=MAX_GROUPS - 1, description="items to skip")] = 0,
        limit: Annotated[int, Query(ge=1, le=50, description="items per page")] = 10,
        dates: Annotated[bool, Query(description='read "in 1989" as a decade filter')] = True,
    ):
        start = time.perf_counter()
        unknown = sorted(set(request.query_params) - SEARCH_PARAMETERS)
        if unknown:
            raise SearchError(
                f"unknown parameter(s) {', '.join(unknown)}: the search takes "
                f"{', '.join(sorted(SEARCH_PARAMETERS))} (pages: offset and limit)"
            )
        if sort not in SORTS:
            raise SearchError(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
        if offset + limit > MAX_GROUPS:
            raise SearchError(
                f"offset + limit is at most {MAX_GROUPS}: narrow the query with filters"
            )
        bad = [m for m in media or () if not re.match(ID_PATTERN, m)]
        if bad:
            raise SearchError(f"media takes media ids from results, not {bad[:3]}")
        window = MAX_LIMIT if media else min(MAX_LIMIT, max(30, 3 * (offset + limit)))
        results = searcher.search(
            query=q,
            mode=mode,
            decades=decade,
            kinds=kind,
            speaker=speaker,
            languages=language,
            limit=window,
            temporal=dates,
            thumbnails=False,
            media_ids=media,
            candidates=window,  # each ranked list brings the window: what a page can show
        )
        catalog = archive.catalog([hit.media_id for hit in results.hits])
        found = result_page(
            results.hits,
            catalog,
            offset=offset,
            limit=limit,
            sort=sort,
            complete=len(results.hits) < window,
        )
        parsed = parse(results.searched_text)
        shown = None if media else MOMENTS
        notes = list(results.notes)
        if not results.hits and not found.total:
            notes.append(_empty_hint(results, mode))
        return {
            "query": results.query,
            "searched_text": results.searched_text,
            "mode": results.mode,
            "sort": sort,
            "offset": offset,
            "limit": limit,
            "total": found.total,
            "total_relation": found.total_relation,
            "groups": [_group(g, parsed, shown) for g in found.groups],
            "facets": {
                name: [{"value": v, "count": c} for v, c in values]
                for name, values in found.facets.items()
            },
            "filters": {
                "decades": list(results.decades) if results.decades else None,
                "decade_filter_source": results.decade_filter_source,
                "kinds": list(results.kinds) if results.kinds else None,
                "languages": list(results.languages) if results.languages else None,
                "speaker": results.speaker,
                "media": media,
            },
            "retrievers": results.retrievers,
            "notes": notes,
            "score_meaning": results.score_meaning,
            "score_meaning_text": SCORE_MEANINGS[results.score_meaning],
            "min_similarity": results.min_similarity,
            "below_floor": results.below_floor,
            "known_speakers": results.known_speakers,
            "took_ms": round((time.perf_counter() - start) * 1000, 1),
        }

    def page_image(
        media_id: Annotated[str, _id_path()],
        page: Annotated[int, PathParam(ge=1, le=100_000, description="page, from 1")],
        if_none_match: Annotated[str | None, Header()] = None,
    ):
        try:
            found = archive.page_image(media_id, page)
        except ImageDecodeError as exc:
            raise HTTPException(
                404, f"no viewable page: the file cannot be decoded ({exc})"
            ) from None
        if found is None:
            raise HTTPException(404, f"no page {page} of a still image {media_id}")
        data, etag = found
        return _image(data, "image/jpeg", etag, "private, max-age=300", if_none_match)

    _get_and_head(
        app,
        "/pages/{media_id}/{page}",
        page_image,
        summary="A page of a still image or scan, as JPEG",
        responses={**api.IMAGE, **api.NOT_FOUND, 503: api.ERRORS[503]},
    )

    def thumbnail(
        keyframe_id: Annotated[str, _id_path()],
        if_none_match: Annotated[str | None, Header()] = None,
    ):
        found = archive.thumbnail(keyframe_id)
        if found is None:
            raise HTTPException(404, f"no keyframe {keyframe_id}")
        data, fmt = found
        etag = f'"{hashlib.sha1(data).hexdigest()[:20]}"'
        kind = THUMBNAIL_TYPES.get(fmt, "application/octet-stream")
        return _image(data, kind, etag, "public, max-age=86400", if_none_match)

    _get_and_head(
        app,
        "/thumbnails/{keyframe_id}",
        thumbnail,
        summary="A keyframe's thumbnail image",
        responses={**api.IMAGE, **api.NOT_FOUND, 503: api.ERRORS[503]},
    )

    def media(
        media_id: Annotated[str, _id_path()],
        request: Request,
        range_header: Annotated[str | None, Header(alias="range")] = None,
        if_none_match: Annotated[str | None, Header()] = None,
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
            log.warning("the store cannot be read for %s: %s", key, exc)
            raise HTTPException(503, f"the store cannot be read now for {key}") from None
        if stored.problem:
            raise HTTPException(403, f"{key} cannot be served: {stored.problem[1]}")
        size = stored.size
        headers = {
            "Accept-Ranges": "bytes",
            "Cache-Control": "private, max-age=300",
            "Content-Disposition": content_disposition(key.rsplit("/", 1)[-1]),
        }
        if row.get("sha256"):
            headers["ETag"] = f'"{row["sha256"][:32]}"'
            if not range_header and not_modified(if_none_match, headers["ETag"]):
                return Response(status_code=304, headers=headers)
        try:
            span = parse_range(range_header, size)
        except Unsatisfiable as exc:
            headers["Content-Range"] = f"bytes */{size}"
            return _error(416, str(exc), headers)
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

    _get_and_head(
        app,
        "/media/{media_id}",
        media,
        summary="The item's media (HTTP Range: 206 with the bytes asked for)",
        responses={
            206: {"description": "the bytes of the Range asked for (Content-Range)"},
            303: {"description": "a scan a browser cannot show: its first page (/pages)"},
            304: {"description": "not modified (If-None-Match)"},
            **api.NOT_FOUND,
            **api.RANGE_ERRORS,
            403: {"model": api.Problem, "description": "the file lies outside the store"},
            503: {"model": api.Problem, "description": "the store cannot be read now"},
        },
    )

    @app.get(
        "/items/{media_id}",
        summary="An item's catalogue row, stage status and failures",
        response_model=api.Item,
        responses={**api.NOT_FOUND, 503: api.ERRORS[503]},
    )
    def item(media_id: Annotated[str, _id_path()]):
        found = archive.item(media_id)
        if found is None:
            raise HTTPException(404, f"no catalogued item {media_id}")
        found["catalog"].pop("uri", None)  # an absolute server path: the store key says it
        found["media_url"] = f"/media/{media_id}"
        return found

    app.openapi = lambda: _openapi(app)
    return app


def _image(
    data: bytes, media_type: str, etag: str, cache: str, if_none_match: str | None
) -> Response:
    """An image with its ETag and caching, or 304 when the client holds it."""
    headers = {"ETag": etag, "Cache-Control": cache}
    if not_modified(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=media_type, headers=headers)


def _get_and_head(app: FastAPI, path: str, endpoint, **documented) -> None:
    """A GET route (documented) and the same for HEAD (headers only)."""
    app.add_api_route(path, endpoint, methods=["GET"], **documented)
    app.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False)


def _openapi(app: FastAPI) -> dict:
    """FastAPI's document without the 422 it declares for every route (bad parameters are
    answered 400 here, as documented per route)."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.get("responses", {})
                if responses.pop("422", None) is not None:
                    responses.setdefault(
                        "400",
                        {
                            "description": "a parameter the service cannot use",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Problem"}
                                }
                            },
                        },
                    )
        components = schema.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        components.setdefault("Problem", api.Problem.model_json_schema())
        app.openapi_schema = schema
    return app.openapi_schema


def _group(group, parsed, shown: int | None) -> dict:
    """A result group as the API returns it (the service's own URLs, no server paths)."""
    moments = group.moments if shown is None else group.moments[:shown]
    date = group.date
    return {
        "media_id": group.media_id,
        "title": group.best.title,
        "media_kind": group.catalog.get("kind"),
        "decade": group.best.decade,
        "date": date.isoformat() if date else None,
        "file": group.catalog.get("store_key"),
        "score": group.best.score,
        "moments": [_moment(hit, parsed) for hit in moments],
        "more_moments": len(group.moments) - len(moments),
        "media_url": f"/media/{group.media_id}",
        "item_url": f"/items/{group.media_id}",
    }


def _moment(hit, parsed) -> dict:
    data = hit.to_dict()
    for internal in ("uri", "deep_link", "title", "decade", "media_id"):
        data.pop(internal, None)
    data["highlights"] = highlights(hit.snippet, parsed)
    data["player_url"] = f"/media/{hit.media_id}#t={hit.time_s:.2f}"
    data["thumbnail_url"] = f"/thumbnails/{hit.keyframe_id}" if hit.keyframe_id else None
    data["page_url"] = f"/pages/{hit.media_id}/{hit.page}" if hit.page else None
    return data


def _empty_hint(results, mode: str) -> str:
    """What to try when nothing was found."""
    tries = []
    if results.decades or results.kinds or results.languages or results.speaker:
        tries.append("remove a filter")
    if results.decade_filter_source and results.decade_filter_source != "argument":
        tries.append("search the words as words (dates=false)")
    if mode == "text":
        tries.append("search by meaning (mode=hybrid)")
    tries.append("fewer or other words, or a prefix*")
    return "nothing found: " + "; ".join(tries)


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
    hosts = [h for h in where.allowed_hosts.split(",") if h.strip()]
    if where.host not in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::"):
        hosts.append(where.host)  # the address it listens on names it too
    app = create_app(default_searcher(), store, warm=warm, allowed_hosts=hosts)
    uvicorn.run(app, host=where.host, port=where.port, log_level="info", access_log=False)
