"""Quiet lance's fork warnings around code that only forks to exec (subprocess)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def exec_children() -> Iterator[None]:
    """Around code that starts child processes by fork + exec (ffprobe, Ray's daemons).

    lance and lancedb warn on every fork of a process that loaded them, since a forked child
    could touch their state; a child that execs at once never does. The warnings are dropped
    here and only here: a real fork elsewhere (multiprocessing) still warns.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="lancedb fork support is experimental")
        warnings.filterwarnings("ignore", message="lance is not fork-safe")
        yield
