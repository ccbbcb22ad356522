"""`archive-search "query" [--decade 1980s] [--mode hybrid] [--json]`: search the archive;
`archive-search serve [--port 8765]`: the search service and page (a query that is just the word
"serve" is asked as `archive-search -- serve`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from archive_pipeline.core.decades import PARTITION_KEYS
from archive_pipeline.search.documents import KINDS
from archive_pipeline.search.query import MODES, SearchError, SearchResults


def clock(seconds: float) -> str:
    """m:ss.s (h:mm:ss past an hour)."""
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:04.1f}" if hours else f"{minutes}:{secs:04.1f}"


def render(results: SearchResults, *, width: int = 70) -> str:
    """A readable table of the hits, with the filters applied and deep links."""
    filters = []
    if results.decades:
        filters.append(f"decade in {', '.join(results.decades)} ({results.decade_filter_source})")
    if results.kinds:
        filters.append(f"kind in {', '.join(results.kinds)}")
    if results.speaker:
        filters.append(f"speaker = {results.speaker}")
    if results.languages:
        filters.append(f"language in {', '.join(results.languages)}")
    lines = [
        f'{results.mode} search for "{results.searched_text}"'
        f" ({', '.join(results.retrievers)}): {len(results.hits)} hits",
        f"filters: {'; '.join(filters) or 'none'}",
        *(f"note: {note}" for note in results.notes),
        "",
        f"{'#':>2}  {'score':>8}  {'kind':<8}  {'decade':<7}  {'where':<15}  {'speaker':<16}  text",
    ]
    for hit in results.hits:
        span = f"page {hit.page}" if hit.page else f"{clock(hit.start_s)}-{clock(hit.end_s)}"
        text = hit.snippet.replace("\n", " / ")
        text = text if len(text) <= width else text[: width - 1] + "…"
        lines.append(
            f"{hit.rank:>2}  {hit.score:>8.4f}  {hit.kind:<8}  {hit.decade:<7}  {span:<15}  "
            f"{(hit.speaker or '-')[:16]:<16}  {text}"
        )
        lines.append(f"{'':>4}{hit.deep_link}")
    return "\n".join(lines)


def save_thumbnails(results: SearchResults, folder: Path) -> dict[str, str]:
    """Write the hits' thumbnails to `folder`: {keyframe_id: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for hit in results.hits:
        if hit.thumbnail and hit.keyframe_id not in written:
            path = folder / f"{hit.rank:02d}-{hit.keyframe_id}.jpg"
            path.write_bytes(hit.thumbnail)
            written[hit.keyframe_id] = str(path)
    return written


def voice_main(args: argparse.Namespace) -> int:
    """Print the voices most like `args.voice` (media_id, speaker)."""
    from archive_pipeline.core.warehouse import Warehouse
    from archive_pipeline.search.voices import VoiceError, find_voice

    warehouse = Warehouse.from_settings(read_only=True)
    try:
        matches = find_voice(warehouse, *args.voice, decades=args.decade, limit=args.limit)
    except VoiceError as exc:
        print(f"archive-search: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([m.to_dict() for m in matches], indent=2))
        return 0
    print(f"Voices like {args.voice[1]} of {args.voice[0]} ({len(matches)}):")
    for m in matches:
        name = f" ({m.speaker_name})" if m.speaker_name else ""
        print(
            f"  {m.similarity:6.3f}  {m.decade:<8} {m.uri}#t={m.first_s:.2f}  {m.speaker}{name}, "
            f"{m.turns} turn(s)"
        )
    return 0


def serve_main(argv: list[str]) -> int:
    """`archive-search serve`: the search service and page."""
    from archive_pipeline.config import settings
    from archive_pipeline.search.service import serve

    parser = argparse.ArgumentParser(
        prog="archive-search serve",
        description="Serve the search API and page over HTTP: /, /search, /thumbnails/{id}, "
        "/media/{id}, /items/{id}, /options, /healthz, /openapi.json.",
    )
    parser.add_argument(
        "--host",
        help=f"address (ARCHIVE_SEARCH_HOST, default {settings.SEARCH_HOST.default}: this "
        "machine only)",
    )
    parser.add_argument(
        "--port",
        type=int,
        help=f"port (ARCHIVE_SEARCH_PORT, default {settings.SEARCH_PORT.default})",
    )
    parser.add_argument(
        "--no-warm",
        action="store_true",
        help="load the query model on the first query, not at start",
    )
    args = parser.parse_args(argv)
    serve(host=args.host, port=args.port, warm=not args.no_warm)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `archive-search` (a damaged table is one line, not a traceback)."""
    from archive_pipeline.core.warehouse import Warehouse, damage_in

    try:
        return _main(argv)
    except Exception as exc:
        damage = damage_in(exc, Warehouse.from_settings(read_only=True))
        if damage is None:
            raise
        print(f"archive-search: {damage}", file=sys.stderr)
        return 3


def _main(argv: list[str] | None = None) -> int:
    """Run one search and print it (or, with `serve`, the search service)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        return serve_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="archive-search",
        description="Search the archive's search_documents (ARCHIVE_WAREHOUSE, default "
        "$ARCHIVE_HOME/warehouse) by text, vector or both.",
    )
    parser.add_argument("query", nargs="?", help="what to search for (not with --voice)")
    parser.add_argument(
        "--decade",
        action="append",
        choices=PARTITION_KEYS,
        metavar="DECADE",
        help="only this decade (repeatable), e.g. 1980s",
    )
    parser.add_argument("--kind", action="append", choices=KINDS, help="speech or keyframe")
    parser.add_argument("--speaker", help="speaker name or label (case-insensitive)")
    parser.add_argument(
        "--language", action="append", help="only documents in this language (repeatable): de, en"
    )
    parser.add_argument("--mode", choices=MODES, default="hybrid")
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument(
        "--no-dates",
        action="store_true",
        help='do not read "in 1989" or "the eighties" in the query as a decade filter',
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--thumbnails", type=Path, help="write the hits' thumbnails here")
    parser.add_argument(
        "--voice",
        nargs=2,
        metavar=("MEDIA_ID", "SPEAKER"),
        help="instead of a query: the voices most like this speaker (label or catalogue name) "
        "of this item, in other items (speaker embeddings of speaker_turns)",
    )
    args = parser.parse_args(argv)
    if args.voice:
        return voice_main(args)
    if args.query is None:
        parser.error("a query (or --voice MEDIA_ID SPEAKER) is required")

    from archive_pipeline.search.query import search

    try:
        results = search(
            query=args.query,
            mode=args.mode,
            decades=args.decade,
            kinds=args.kind,
            speaker=args.speaker,
            languages=args.language,
            limit=args.limit,
            temporal=not args.no_dates,
            thumbnails=bool(args.thumbnails),
        )
    except SearchError as exc:
        print(f"archive-search: {exc}", file=sys.stderr)
        return 2
    paths = save_thumbnails(results, args.thumbnails) if args.thumbnails else {}
    if args.json:
        data = results.to_dict()
        for hit in data["hits"]:
            hit["thumbnail_path"] = paths.get(hit["keyframe_id"])
        print(json.dumps(data, indent=2, default=str))
    else:
        print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
