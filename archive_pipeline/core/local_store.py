"""The store as a local folder: listed with every hostile entry (links, loops, sockets, folders
named like media) recorded as a problem, never followed out of the root; read-only."""

from __future__ import annotations

import contextlib
import errno
import os
import stat as st_mode
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from archive_pipeline.core.media import is_media_key
from archive_pipeline.core.store import StoredObject


def _problem(key: str, info: os.stat_result, error_class: str, message: str) -> StoredObject:
    return StoredObject(key, 0, info.st_mtime_ns / 1e9, problem=(error_class, message))


@dataclass(frozen=True)
class LocalStore:
    """A folder on a local or mounted filesystem."""

    root: str

    @property
    def root_uri(self) -> str:
        """The store root as a file:// URI."""
        return Path(self.root).resolve().as_uri()

    def _path(self, key: str) -> Path:
        path = (Path(self.root) / key).resolve()
        if not path.is_relative_to(Path(self.root).resolve()):
            raise ValueError(f"key {key!r} escapes the store root")
        return path

    def list_objects(self) -> Iterator[StoredObject]:
        """Yield every entry under the root, sorted by key: regular files (symbolic links to a
        file inside the store are followed), and, as a `problem`, whatever cannot be read as
        one (a link out of the store, a loop, a dangling link, a link to a folder, a folder or
        a FIFO named like media, an unreadable entry). Never opens an entry."""
        root = Path(self.root)
        if not root.is_dir():
            raise FileNotFoundError(f"inbox folder {root} does not exist")
        keys: list[str] = []
        problems: dict[str, tuple[str, str]] = {}

        def unreadable(exc: OSError) -> None:  # a folder os.walk could not list
            key = Path(exc.filename).relative_to(root).as_posix()
            problems[key] = ("UnreadableEntry", f"folder cannot be listed: {exc.strerror}")

        for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=unreadable):
            rel = Path(dirpath).relative_to(root)
            kept = []
            for name in dirnames:
                if name.startswith("."):
                    continue
                if (Path(dirpath) / name).is_symlink():
                    keys.append((rel / name).as_posix())  # classified below; never walked
                    continue
                kept.append(name)
                if is_media_key(name):
                    problems[(rel / name).as_posix()] = (
                        "NotAFile",
                        "a folder named like a media file (its contents are listed as keys)",
                    )
            dirnames[:] = kept
            keys.extend((rel / name).as_posix() for name in filenames)
        for key in sorted([*keys, *problems]):
            if key in problems:
                yield StoredObject(key=key, size=0, mtime=0.0, problem=problems[key])
                continue
            try:
                yield self.stat(key)
            except FileNotFoundError:  # deleted while listing
                continue

    def stat(self, key: str) -> StoredObject:
        """Size and mtime of one entry, or what keeps it from being read as a file (`problem`)."""
        path = Path(self.root) / key
        own = path.lstat()
        target = None
        if st_mode.S_ISLNK(own.st_mode):
            try:
                info = path.stat()
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    return _problem(key, own, "SymlinkLoop", "symbolic link loop")
                if exc.errno == errno.ENOENT:
                    link = os.readlink(path)
                    return _problem(
                        key, own, "DanglingLink", f"symbolic link to {link!r}, which does not exist"
                    )
                return _problem(
                    key, own, "UnreadableEntry", f"link cannot be followed: {exc.strerror}"
                )
            real = Path(os.path.realpath(path))
            real_root = Path(self.root).resolve()
            if not real.is_relative_to(real_root):
                return _problem(
                    key, own, "LinkOutsideStore", "symbolic link to a path outside the store"
                )
            target = real.relative_to(real_root).as_posix()
        else:
            info = own
        mode = info.st_mode
        if not st_mode.S_ISREG(mode):
            what = (
                "a folder"
                if st_mode.S_ISDIR(mode)
                else "a FIFO"
                if st_mode.S_ISFIFO(mode)
                else "a socket"
                if st_mode.S_ISSOCK(mode)
                else "a device"
                if st_mode.S_ISCHR(mode) or st_mode.S_ISBLK(mode)
                else "not a regular file"
            )
            error = "LinkedFolder" if target is not None and st_mode.S_ISDIR(mode) else "NotAFile"
            via = "symbolic link to " if target is not None else ""
            return _problem(key, own, error, f"{via}{what}, not a media file")
        if not os.access(path, os.R_OK):
            return _problem(key, own, "UnreadableEntry", "permission denied (not readable)")
        return StoredObject(key=key, size=info.st_size, mtime=info.st_mtime_ns / 1e9, target=target)

    def open(self, key: str) -> BinaryIO:
        """Open a file for reading (binary)."""
        return open(self._path(key), "rb")

    def read_range(self, key: str, start: int, end: int, chunk: int = 1 << 16) -> Iterator[bytes]:
        """Yield bytes start..end (inclusive) of a file, in chunks (the file is opened at once,
        so a missing file raises here)."""
        handle = self.open(key)

        def chunks() -> Iterator[bytes]:
            with handle:
                handle.seek(start)
                left = end - start + 1
                while left > 0 and (data := handle.read(min(chunk, left))):
                    left -= len(data)
                    yield data

        return chunks()

    @contextlib.contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        """Yield the file's own path: no copy is needed for a local store."""
        yield self._path(key)

    def entry_uri(self, key: str) -> str:
        """The file:// URI of the entry itself (a link's own path, not its target)."""
        return (Path(self.root).resolve() / key).as_uri()

    def uri(self, key: str) -> str:
        """Return the file:// URI of a key (of the file a link inside the store points at; of
        the entry itself for a link that cannot be followed there)."""
        try:
            return self._path(key).as_uri()
        except (ValueError, RuntimeError, OSError):  # out of the store, a loop
            return (Path(self.root).resolve() / key).as_uri()
