"""What a compute runs and returns: a stage (`setup()`/`process()`) with its resources, one
`ItemOutcome` per item (the value, or the error as data), and `Compute`, which maps a stage over
items: `InlineCompute` here (debugging, tests), `core.ray_runtime.RayRuntime` on Ray
(DESIGN §6; its workers in `core.actor_pool`, Ray itself in `core.ray_cluster`).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol


@dataclass(frozen=True)
class StageResources:
    """What one worker (actor) of a stage needs: CPUs, fractional GPUs, memory, custom resources."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory_mb: int = 0
    custom: Mapping[str, float] = field(default_factory=dict)
    max_actors: int | None = None  # cap on parallel workers; None = as many as fit

    def request(self) -> dict[str, float]:
        """The resource request in Ray's names (CPU, GPU, memory in bytes, custom)."""
        req = {"CPU": self.num_cpus, "GPU": self.num_gpus, "memory": self.memory_mb * 1024**2}
        req.update(self.custom)
        return {k: float(v) for k, v in req.items() if v}

    def ray_options(self) -> dict[str, Any]:
        """Keyword arguments for `ray.remote(...).options(...)`."""
        options: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.memory_mb:
            options["memory"] = self.memory_mb * 1024**2
        if self.custom:
            options["resources"] = dict(self.custom)
        return options

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> StageResources:
        """Return a copy with configured values (keys: num_cpus, num_gpus, memory_mb, ...)."""
        if not overrides:
            return self
        unknown = set(overrides) - {"num_cpus", "num_gpus", "memory_mb", "custom", "max_actors"}
        if unknown:
            raise ValueError(f"unknown stage resource settings {sorted(unknown)}")
        return replace(self, **overrides)


class Stage(Protocol):
    """A unit of pipeline work: `setup()` once per worker, then `process(item)` per item."""

    name: str
    code_version: str
    resources: StageResources

    def setup(self) -> None: ...
    def process(self, item: Any) -> Any: ...


@dataclass(frozen=True)
class ItemOutcome:
    """The result of one item: its value, or its error class and message."""

    index: int
    value: Any = None
    error_class: str | None = None
    message: str | None = None
    seconds: float = 0.0
    detail: str | None = None  # the worker's traceback (last lines) of a failed item

    @property
    def ok(self) -> bool:
        """Whether the item was processed without error."""
        return self.error_class is None


class StageSetupError(RuntimeError):
    """A stage could not start (e.g. its model is not available): the whole stage fails."""


def run_one(stage: Stage, index: int, item: Any) -> ItemOutcome:
    start = time.perf_counter()
    try:
        value = stage.process(item)
    except Exception as exc:  # errors are data: the item is recorded as failed
        return ItemOutcome(
            index,
            None,
            type(exc).__name__,
            str(exc) or repr(exc),
            time.perf_counter() - start,
            detail=_traceback_tail(),
        )
    return ItemOutcome(index, value, seconds=time.perf_counter() - start)


def _traceback_tail(limit: int = 2000) -> str:
    """The current exception's traceback, its last `limit` characters (for the run log)."""
    text = traceback.format_exc()
    return text if len(text) <= limit else "..." + text[-limit:]


OnOutcome = Callable[[ItemOutcome], None]


def stream_inline(stage: Stage, items: Sequence[Any]) -> Iterator[ItemOutcome]:
    """Run a stage in this process, one item after another, yielding each outcome."""
    try:
        stage.setup()
    except Exception as exc:
        raise StageSetupError(f"stage {stage.name!r} could not start: {exc}") from exc
    for i, item in enumerate(items):
        yield run_one(stage, i, item)


def run_inline(
    stage: Stage, items: Sequence[Any], *, on_outcome: OnOutcome | None = None
) -> list[ItemOutcome]:
    """Run a stage in this process, one item after another (debugging and small tests);
    `on_outcome` is called as each item finishes."""
    outcomes = []
    for outcome in stream_inline(stage, items):
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return outcomes


def stage_key(stage: Stage) -> str:
    """Identity of a stage configuration within a run (its name and pickled state)."""
    import hashlib

    from ray import cloudpickle

    return f"{stage.name}:{hashlib.sha1(cloudpickle.dumps(stage)).hexdigest()[:16]}"


class Compute(Protocol):
    """Something that maps a stage over items: `RayRuntime` or `InlineCompute`."""

    def stream(
        self,
        stage: Stage,
        items: Sequence[Any],
        *,
        durations: Sequence[float | None] | None = None,
    ) -> Iterator[ItemOutcome]:
        """Yield one outcome per item as each finishes (in finishing order)."""

    def map(
        self,
        stage: Stage,
        items: Sequence[Any],
        *,
        on_outcome: OnOutcome | None = None,
        durations: Sequence[float | None] | None = None,
    ) -> list[ItemOutcome]:
        """All outcomes in item order (small inputs and tests)."""


class InlineCompute:
    """Runs stages in the calling process (debugging, and tests that are not about Ray)."""

    def stream(
        self,
        stage: Stage,
        items: Sequence[Any],
        *,
        durations: Sequence[float | None] | None = None,
    ) -> Iterator[ItemOutcome]:
        """Process items one after another in this process (no time bound: debugging)."""
        if items:
            yield from stream_inline(stage, items)

    def map(
        self,
        stage: Stage,
        items: Sequence[Any],
        *,
        on_outcome: OnOutcome | None = None,
        durations: Sequence[float | None] | None = None,
    ) -> list[ItemOutcome]:
        """Process items one after another in this process (no time bound: debugging)."""
        return run_inline(stage, items, on_outcome=on_outcome) if items else []
