"""The inventory of a store: its media items, each with its decade and catalogue metadata
(sidecars, catalogue.csv, path rules), and a digest of what a decade holds."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from archive_pipeline.core import decades as dec
from archive_pipeline.core.media import is_media_key, kind_from_extension
from archive_pipeline.core.store import Store, StoredObject, read_bytes


@dataclass(frozen=True)
class MediaItem:
    """A media object with its decade assignment and catalogue metadata (the unit of work)."""

    obj: StoredObject
    uri: str
    extension_kind: str
    assignment: dec.DecadeAssignment
    metadata: dec.CatalogueMetadata | None
    metadata_warning: str | None = None
    aliases: tuple[str, ...] = ()  # other keys of the same file (symbolic links to it)

    @property
    def key(self) -> str:
        """The object's key in the store."""
        return self.obj.key

    @property
    def decade(self) -> str:
        """The decade partition key this item belongs to."""
        return self.assignment.decade

    @property
    def state_digest(self) -> str:
        """A digest of everything that decides this item's catalogue row (object and metadata)."""
        meta = self.metadata.to_json() if self.metadata else ""
        text = "|".join(
            [
                self.key,
                self.obj.fingerprint,
                self.assignment.decade,
                self.assignment.rule,
                self.assignment.evidence,
                meta,
                self.metadata_warning or "",
                *self.aliases,
                *(self.obj.problem or ()),
            ]
        )
        return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class Inventory:
    """Every media item in the store, with warnings about unusable metadata."""

    items: list[MediaItem]
    warnings: list[str]

    def for_decade(self, decade: str) -> list[MediaItem]:
        """Return the items assigned to one decade partition."""
        return [item for item in self.items if item.decade == decade]

    def decade_digests(self) -> dict[str, str]:
        """Digest per decade (`items_digest` of its items); a decade without items has no
        entry (its digest is NO_MEDIA)."""
        by_decade: dict[str, list[MediaItem]] = {}
        for item in self.items:
            by_decade.setdefault(item.decade, []).append(item)
        return {decade: items_digest(items) for decade, items in sorted(by_decade.items())}


def items_digest(items: list[MediaItem]) -> str:
    """Digest over the items' keys, sizes, times, etags, decade rules and metadata: new,
    changed, moved or deleted items change it (sidecars and catalogue.csv count); NO_MEDIA
    for none."""
    if not items:
        return NO_MEDIA
    states = sorted(item.state_digest for item in items)
    return hashlib.sha256("\n".join(states).encode()).hexdigest()[:24]


NO_MEDIA = "no-media"  # the inbox digest of a decade without items


class SidecarCache:
    """Parsed sidecars and catalogue.csv keyed by (key, fingerprint), so unchanged files are
    read once per process instead of once per sensor tick or partition."""

    def __init__(self, max_entries: int = 200_000) -> None:
        self._entries: dict[tuple[str, str], object] = {}
        self._max = max_entries

    def get_or_load(self, obj: StoredObject, load):
        """Return the cached value for this object version, loading it on a miss."""
        key = (obj.key, obj.fingerprint)
        if key not in self._entries:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[key] = load()
        return self._entries[key]


_DEFAULT_SIDECAR_CACHE = SidecarCache()


def scan_inventory(store: Store, *, cache: SidecarCache | None = None) -> Inventory:
    """List the store, pair media with sidecars and `catalogue.csv`, and assign every decade."""
    cache = cache or _DEFAULT_SIDECAR_CACHE
    objects = {obj.key: obj for obj in store.list_objects()}
    warnings: list[str] = []
    csv_rows: dict = {}
    csv_obj = objects.get(dec.CATALOGUE_CSV)
    if csv_obj is not None:
        csv_rows, csv_warnings = cache.get_or_load(
            csv_obj, lambda: dec.parse_catalogue_csv(read_bytes(store, dec.CATALOGUE_CSV))
        )
        warnings.extend(csv_warnings)
    aliases = _aliases(objects)
    skipped = {alias for keys in aliases.values() for alias in keys}
    items = []
    for key, obj in objects.items():
        linked_folder = obj.problem is not None and obj.problem[0] == "LinkedFolder"
        if not (is_media_key(key) or linked_folder) or key in skipped:
            continue  # (a link to a folder is reported: what is behind it is not catalogued)
        metadata, problems = None, []
        sidecar = objects.get(key + dec.SIDECAR_SUFFIX)
        if sidecar is not None:
            metadata, problem = cache.get_or_load(
                sidecar, lambda s=sidecar: _load_sidecar(store, s)
            )
            if problem:
                problems.append(f"sidecar {sidecar.key}: {problem}")
        if metadata is None and key in csv_rows:
            try:
                metadata = dec.parse_metadata(csv_rows[key], source=dec.RULE_CATALOGUE_CSV)
            except dec.MetadataError as exc:
                problems.append(f"{dec.CATALOGUE_CSV} row {key}: {exc}")
        assignment = dec.assign_decade(key, metadata)
        problems.extend(assignment.notes)  # e.g. a sidecar's year 3000, whichever rule decided
        warning = "; ".join(problems) or None
        if warning:
            warnings.append(warning)
        items.append(
            MediaItem(
                obj=obj,
                # an entry that is not a readable file (a link to a folder, a dangling link) is
                # named by its own path: two links to one place are two entries, two failures
                uri=store.uri(key) if obj.problem is None else store.entry_uri(key),
                extension_kind=kind_from_extension(key) or "",
                assignment=assignment,
                metadata=metadata,
                metadata_warning=warning,
                aliases=aliases.get(key, ()),
            )
        )
    missing = sorted(set(csv_rows) - set(objects))
    if missing:
        warnings.append(
            f"{dec.CATALOGUE_CSV} lists {len(missing)} paths not in the store: {missing[:5]}"
        )
    return Inventory(items=items, warnings=warnings)


def _aliases(objects: dict[str, StoredObject]) -> dict[str, tuple[str, ...]]:
    """{key: its aliases} for media files listed under several keys (symbolic links inside the
    store): the file's own key when it is listed, else the first key, is catalogued."""
    by_file: dict[str, list[str]] = {}
    for key, obj in objects.items():
        if obj.problem is None and is_media_key(key):
            by_file.setdefault(obj.target or key, []).append(key)
    found = {}
    for file, keys in by_file.items():
        if len(keys) > 1:
            first = file if file in keys else keys[0]
            found[first] = tuple(k for k in keys if k != first)
    return found


def _load_sidecar(
    store: Store, obj: StoredObject
) -> tuple[dec.CatalogueMetadata | None, str | None]:
    try:
        return dec.parse_sidecar(read_bytes(store, obj.key)), None
    except dec.MetadataError as exc:
        return None, str(exc)
    except ValueError as exc:
        return None, str(exc)
