"""Process-wide settings made when the package is imported: fewer glibc malloc arenas (long
runs do not fragment), no files written outside ARCHIVE_HOME by libraries' telemetry, and
OpenMP threads that sleep rather than spin while they wait."""

from __future__ import annotations

import ctypes
import ctypes.util

from archive_pipeline.config import settings

M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)
DEFAULT_ARENAS = 2


def limit_malloc_arenas(arenas: int = DEFAULT_ARENAS) -> bool:
    """Cap glibc's malloc arenas for this process (as MALLOC_ARENA_MAX would); True if applied.

    glibc gives each thread that contends for the heap its own arena, up to 8 per core, and
    keeps freed memory in each: the Dagster process, whose Lance, Arrow and Ray threads take
    turns allocating every batch's rows, grew with the number of batches committed (a 40 h
    replay of thumbnails peaked 29% higher than with 2 arenas; benchmarks/scale.py). Called
    when the package is imported, before those threads start (glibc fixes its limit once it
    has 8 arenas). A MALLOC_ARENA_MAX set by the operator wins; a libc without mallopt
    (musl, macOS) is left as it is.
    """
    if settings.library_value("MALLOC_ARENA_MAX"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, int(arenas)))
    except (OSError, AttributeError):
        return False


def keep_libraries_quiet() -> None:
    """onnxruntime (Silero VAD) writes a telemetry device id and database under
    ~/.cache/Microsoft unless ORT_DISABLE_TELEMETRY is set: set it (an operator's value wins).
    Ray's workers inherit it from the driver that starts them."""
    settings.set_library_default("ORT_DISABLE_TELEMETRY")


def threads_wait_passively() -> None:
    """OMP_WAIT_POLICY=PASSIVE unless the operator set it: torch's OpenMP threads (TransNetV2,
    pyannote, the text encoders) then sleep between parallel regions instead of spinning. A
    spinning thread keeps a core from whatever else runs on the machine (ffmpeg decoders, the
    other worker, Dagster): TransNetV2 on 2 threads beside one busy process used 20.8 CPU-s
    for what takes 13.4 alone, 12.7 with passive waiting (benchmarks/threads.py). Alone,
    passive waiting is 8-21% slower in wall time, paid only by a stage given several CPUs (a
    worker's one thread never waits). OpenMP reads it when torch is loaded: the package is
    imported first, and Ray's workers inherit it from the driver."""
    settings.set_library_default("OMP_WAIT_POLICY")


def configure_process() -> None:
    """Everything above, once per process, before Lance, Arrow, Ray, torch or onnxruntime
    start."""
    limit_malloc_arenas()
    keep_libraries_quiet()
    threads_wait_passively()
