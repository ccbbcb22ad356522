"""What a stage run over a decade has to do, decided before any work: which items are cached,
which failed for good, which contents are shared by several items, which are done in another
decade (rows copied), and which are computed. Pure: no warehouse, no Ray (the warehouse's
answers come in as a `Prior` and a `done_elsewhere` map)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from archive_pipeline.core.errors import is_permanent
from archive_pipeline.stages.base import ItemRef
from archive_pipeline.stages.ledger import Pair, Prior


@dataclass(frozen=True)
class PartitionPlan:
    """The work of one stage over one decade. Items are known by index into `items`."""

    items: tuple[Any, ...]
    refs: tuple[ItemRef, ...]
    keys: tuple[str, ...]  # each item's cache key
    prior: Prior
    n_listed_twice: int = 0  # items dropped because their URI was listed before
    todo: tuple[int, ...] = ()  # items neither cached nor failed for good
    sharing: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # key -> todo items
    units: tuple[int, ...] = ()  # one item per content to compute
    copies: tuple[int, ...] = ()  # one item per content done elsewhere (rows copied)
    elsewhere: Mapping[str, Pair] = field(default_factory=dict)  # key -> (decade, uri) done
    settled: frozenset[Pair] = frozenset()  # items failed before with a permanent error

    @property
    def pairs(self) -> frozenset[Pair]:
        """(uri, cache key) of every item."""
        return frozenset(zip((r.uri for r in self.refs), self.keys, strict=True))

    def pair(self, i: int) -> Pair:
        """(uri, cache key) of item i."""
        return self.refs[i].uri, self.keys[i]

    @property
    def n_copied(self) -> int:
        """Items whose rows are copied from another item done with the same content."""
        return sum(len(self.sharing[self.keys[i]]) for i in self.copies)

    @property
    def n_to_compute(self) -> int:
        """Items that get their rows from a computation in this run."""
        return len(self.todo) - self.n_copied

    @property
    def undone(self) -> set[Pair]:
        """Items whose rows are not in the warehouse (not a source to copy from)."""
        return {self.pair(i) for i in self.todo} | set(self.prior.lost)

    def copying(self, elsewhere: Mapping[str, Pair]) -> PartitionPlan:
        """The plan with the contents found done elsewhere copied instead of computed."""
        found = {key: where for key, where in elsewhere.items() if key in self.sharing}
        return replace(
            self,
            elsewhere=found,
            copies=tuple(i for i in self.units if self.keys[i] in found),
            units=tuple(i for i in self.units if self.keys[i] not in found),
        )

    def unchanged(self) -> bool:
        """Nothing to sweep after the run: no item done, none added or gone, every earlier
        failure still failing (rows a killed run committed without their ledger entries
        belong to items computed again, so the run after it is not one of these)."""
        earlier_failures = {(uri, key) for uri, key, _, _ in self.prior.failures}
        return (
            not self.todo
            and earlier_failures <= self.settled
            and set(self.prior.ledger) == self.pairs
        )

    def stale(self) -> tuple[set[str], list[Pair]]:
        """What the sweep removes: rows whose cache key no item has now, and rows under a
        URI no longer listed whose key another item still has ((uri, key) pairs)."""
        current = set(self.keys)
        pairs = self.pairs
        left = sorted(p for p in self.prior.ledger if p not in pairs and p[1] in current)
        return current, left

    def summary(self, stage: str, decade: str) -> str:
        """The console line that says what the run will do."""
        todo, n_copied = len(self.todo), self.n_copied
        failed = len(self.settled)
        shared = (
            f" ({len(self.units)} distinct contents)" if len(self.units) < todo - n_copied else ""
        )
        found = f", {n_copied} done in another decade (copied)" if self.copies else ""
        bad = f" ({failed} failed for good: retried when they change)" if failed else ""
        return (
            f"{stage} {decade}: {len(self.items)} item(s), {len(self.items) - todo} unchanged "
            f"(cached){bad}{found}, {todo - n_copied} to compute{shared}"
        )


def plan_partition(
    items: Sequence[Any], refs: Sequence[ItemRef], keys: Sequence[str], prior: Prior
) -> PartitionPlan:
    """The plan for `items` (named by `refs`, with cache `keys`) given what the warehouse
    holds (`prior`). An item is known by its URI and cache key: two items with the same
    content each get rows and a ledger entry, and the content is computed once. One URI is one
    item (a repeated URI is dropped, counted in `n_listed_twice`)."""
    kept = sorted({ref.uri: i for i, ref in reversed(list(enumerate(refs)))}.values())
    n_listed_twice = len(refs) - len(kept)
    items, refs, keys = ([seq[i] for i in kept] for seq in (items, refs, keys))
    pairs = set(zip((r.uri for r in refs), keys, strict=True))
    # failed before with an error these bytes give again: not retried until the key changes
    settled = frozenset((uri, key) for uri, key, error, _ in prior.failures if is_permanent(error))
    ok = {pair for pair, row in prior.ledger.items() if row.status == "ok"}
    done = ok - prior.lost | settled
    todo = tuple(i for i in range(len(items)) if (refs[i].uri, keys[i]) not in done)
    sharing: dict[str, list[int]] = {}
    for i in todo:
        sharing.setdefault(keys[i], []).append(i)
    return PartitionPlan(
        items=tuple(items),
        refs=tuple(refs),
        keys=tuple(keys),
        prior=prior,
        n_listed_twice=n_listed_twice,
        todo=todo,
        sharing={key: tuple(members) for key, members in sharing.items()},
        units=tuple(members[0] for members in sharing.values()),
        settled=frozenset(settled & pairs),
    )
