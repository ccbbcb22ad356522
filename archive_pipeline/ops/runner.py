"""Run the pipeline over decades in this process, with progress on the console.

The runner behind `archive-pipeline run` (one's own archive) and `make demo`: it runs only the
decades that have media (or catalogued rows to remove), starts Ray once for all of them (on
the first stage with work: an unchanged archive starts no Ray and loads no model), and records
every run in the Dagster instance, so the UI shows them.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from archive_pipeline.config import paths, settings
from archive_pipeline.defs.runs import (
    INPUTS_TAG,
    PROCESS_TAG,
    TRIGGER_TAG,
    fail_abandoned_runs,
    process_tag,
    run_failures,
    trigger_tags,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
# the compact console logger of defs/console.py: progress lines, failed checks, step failures
PROGRESS_LOGS = {"loggers": {"progress": {"config": {}}}}
CHECK_TRIGGER = "archive-pipeline check"  # the trigger of runs of checks alone
# Dagster's console logger (with its DEBUG events when ARCHIVE_VERBOSE is on)
VERBOSE_LOGS = {"loggers": {"console": {}}}


def prepare_instance() -> Path:
    """Point DAGSTER_HOME at $ARCHIVE_HOME/dagster_home (unless set), with dagster.yaml, and
    create its storage once (before any other Dagster process can race to migrate it)."""
    import dagster as dg

    home = Path(settings.export(settings.DAGSTER_HOME))
    for folder in (home, paths.cache()):
        folder.mkdir(parents=True, exist_ok=True)
    # Processes started together on a new home take turns: the first creates the storage
    # (config, SQLite schemas, alembic stamps), the others find it made. Without this, two
    # first starts could both stamp a schema ("alembic_version has more than one head").
    with open(home / ".instance.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        config = home / "dagster.yaml"
        if not config.exists() and (REPO_ROOT / "dagster.yaml").exists():
            part = config.with_name(f".dagster.yaml.{os.getpid()}")
            shutil.copyfile(REPO_ROOT / "dagster.yaml", part)
            os.replace(part, config)
        dg.DagsterInstance.get().dispose()  # creates the SQLite schema (or checks PostgreSQL's)
    return home


@dataclass
class DecadeRun:
    """One decade's run: outcome, time and what its assets reported."""

    decade: str
    run_id: str
    success: bool
    seconds: float
    items: int = 0
    computed: int = 0
    failures: int = 0
    checks: int = 0  # check evaluations
    only_checks: bool = False  # the run evaluated checks alone
    failed_checks: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # 'step: ErrorClass: message' per failure
    skipped: bool = False  # unchanged since `run_id`, which finished clean: not run again

    @property
    def clean(self) -> bool:
        """Succeeded with no failed item and every check passed."""
        return self.success and not self.failures and not self.failed_checks

    def line(self) -> str:
        """One summary line for the console (and one per failed step, saying why)."""
        if self.skipped:
            return (
                f"{self.decade:>8}: unchanged since run {self.run_id[:8]} (same files, code and "
                "settings; it finished clean): not run again (`--rerun` runs it)"
            )
        status = "ok" if self.success else "FAILED"
        checks = (
            f"; checks not passed: {', '.join(self.failed_checks)}" if self.failed_checks else ""
        )
        why = "".join(f"\n{'':>10}failed: {error}" for error in self.errors)
        if self.only_checks:
            return (
                f"{self.decade:>8}: {status} in {self.seconds:.1f} s (run {self.run_id[:8]}): "
                f"{self.checks} checks evaluated, {len(self.failed_checks)} not passed"
                f"{checks}{why}"
            )
        return (
            f"{self.decade:>8}: {status} in {self.seconds:.1f} s (run {self.run_id[:8]}): "
            f"{self.items} media items, {self.computed} item-stages computed, "
            f"{self.failures} failures{checks}{why}"
        )


class Plan(NamedTuple):
    """The decades to run, how many media items the store holds, and each decade's listing
    digest (`Inventory.decade_digests`)."""

    decades: list[str]
    items: int
    digests: dict[str, str]


def planned_decades(requested: Sequence[str] | None) -> tuple[list[str], int]:
    """The decades to run (requested ones, or every decade with media or catalogued rows) and
    how many media items the store holds."""
    plan = plan_decades(requested)
    return plan.decades, plan.items


def plan_decades(requested: Sequence[str] | None) -> Plan:
    """`planned_decades`, with each decade's listing digest."""
    from archive_pipeline.core.decades import PARTITION_KEYS
    from archive_pipeline.core.inventory import scan_inventory
    from archive_pipeline.core.store import open_store
    from archive_pipeline.core.warehouse import Warehouse
    from archive_pipeline.defs.health import active_decades

    unknown = sorted(set(requested or ()) - set(PARTITION_KEYS))
    if unknown:
        raise ValueError(f"unknown decades {unknown}; decades are {list(PARTITION_KEYS)}")
    inventory = scan_inventory(open_store())
    digests = inventory.decade_digests()
    if requested:
        decades = [d for d in PARTITION_KEYS if d in set(requested)]
    else:
        warehouse = Warehouse.from_settings()
        decades = active_decades((i.decade for i in inventory.items), warehouse)
    return Plan(decades, len(inventory.items), digests)


def decade_inputs(digests: Mapping[str, str], decades: Sequence[str]) -> dict[str, str]:
    """Per decade, a digest of what its run is built from: its listing (NO_MEDIA when empty),
    the code and every setting (the warehouse's location among them). A decade whose latest
    run finished clean from the same inputs (`INPUTS_TAG`, with the same warehouse tables)
    would compute nothing again."""
    import hashlib

    from archive_pipeline.core.inventory import NO_MEDIA
    from archive_pipeline.core.workers import code_digest

    base = f"{code_digest()}:{settings.fingerprint()}"
    return {
        d: hashlib.sha1(f"{base}:{digests.get(d, NO_MEDIA)}".encode()).hexdigest()[:16]
        for d in decades
    }


def with_tables(inputs: str) -> str:
    """`inputs` with the warehouse's tables as they are now: a deleted table or warehouse
    makes every decade run again."""
    import hashlib

    from archive_pipeline.core.warehouse import Warehouse

    tables = ",".join(sorted(Warehouse.from_settings().table_names()))
    return hashlib.sha1(f"{inputs}:{tables}".encode()).hexdigest()[:16]


def unchanged_run(instance, decade: str, inputs: str):
    """The decade's latest run that materialised assets, if it finished clean (SUCCESS, no
    failed item, every check passed) from these inputs; else None (it must run)."""
    import dagster as dg

    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": decade}), limit=20)
    # runs of `archive-pipeline check` change no data; any other later run (UI, sensor, a
    # failed run) means the decade must run
    latest = next((r for r in runs if r.tags.get(TRIGGER_TAG) != CHECK_TRIGGER), None)
    if latest is None or latest.status != dg.DagsterRunStatus.SUCCESS:
        return None
    return latest if latest.tags.get(INPUTS_TAG) == inputs else None


def _summarise(decade: str, result, seconds: float) -> DecadeRun:
    run = DecadeRun(decade, result.run_id, result.success, seconds)
    if not result.success:
        run.errors = run_failures(result)
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        counts = {
            name: getattr(metadata.get(name), "value", 0) or 0
            for name in ("items", "computed", "failures")
        }
        if event.asset_key.to_user_string() == "media_catalog":
            run.items = counts["items"]
        run.computed += counts["computed"]
        run.failures += counts["failures"]
    evaluations = result.get_asset_check_evaluations()
    run.checks = len(evaluations)
    run.failed_checks = sorted(
        f"{e.asset_key.to_user_string()}:{e.check_name}" for e in evaluations if not e.passed
    )
    return run


def pipeline_job(definitions):
    """Every asset of the pipeline with its checks, in Dagster's asset job (the job of every
    run, whatever launched it; the inbox source asset is observed, not run): what one decade's
    run executes."""
    assets = definitions.resolve_asset_graph().materializable_asset_keys
    return definitions.resolve_implicit_global_asset_job_def().get_subset(asset_selection=assets)


def check_keys(assets: Sequence[str] | None, names: Sequence[str] | None) -> set:
    """The checks of these assets (every asset when None) with these names (every check when
    None); ValueError naming what exists when an asset or a check name is unknown."""

    from archive_pipeline.definitions import defs

    keys = defs().resolve_asset_graph().asset_check_keys
    for wanted, have, what in (
        (assets, {k.asset_key.to_user_string() for k in keys}, "assets with checks"),
        (names, {k.name for k in keys}, "checks"),
    ):
        unknown = sorted(set(wanted or ()) - have)
        if unknown:
            raise ValueError(f"unknown {what.split()[0]} {unknown}; {what}: {sorted(have)}")
    return {
        k
        for k in keys
        if (not assets or k.asset_key.to_user_string() in assets) and (not names or k.name in names)
    }


def run_decades(
    decades: Sequence[str],
    *,
    trigger: str,
    out: Callable[[str], None] = print,
    only_checks: set | None = None,
    inputs: Mapping[str, str] | None = None,
) -> list[DecadeRun]:
    """Run every asset for each decade, in order, in this process (progress lines on stdout);
    one Ray serves every run and is stopped at the end. With `only_checks` (check keys), run
    those checks alone, reading the committed tables: nothing is materialised again. With
    `inputs` (`decade_inputs`), a decade whose latest run finished clean from the same inputs
    is not run again, and a clean run is tagged with its inputs."""
    import dagster as dg

    from archive_pipeline.definitions import defs
    from archive_pipeline.defs.partitions import register_decades
    from archive_pipeline.defs.resources import RayResource

    prepare_instance()
    instance = dg.DagsterInstance.get()
    for run_id in fail_abandoned_runs(instance):
        out(f"run {run_id[:8]} was left STARTED by a process that is gone: marked failed")
    added = register_decades(instance, decades)
    if added:
        out(f"decades now partitions (they have media): {', '.join(added)}")
    job = None  # built for the first decade that runs (loading the definitions takes seconds)
    ray = RayResource(shutdown_after_run=False)
    logs = VERBOSE_LOGS if settings.VERBOSE.read() else PROGRESS_LOGS
    runs = []
    try:
        for decade in decades:
            same = unchanged_run(instance, decade, with_tables(inputs[decade])) if inputs else None
            if same is not None:
                runs.append(DecadeRun(decade, same.run_id, True, 0.0, skipped=True))
                out(runs[-1].line())
                continue
            out(f"--- {decade}: " + ("checks" if only_checks is not None else "every asset"))
            start = time.perf_counter()
            if job is None:
                job = pipeline_job(defs())
                if only_checks is not None:
                    job = job.get_subset(asset_selection=set(), asset_check_selection=only_checks)
            tags = {**trigger_tags(trigger), PROCESS_TAG: process_tag()}
            # a run of checks alone names its decade by tag: Dagster finds no partitions
            # definition in a selection without assets (the UI's Execute button does the same)
            partition = {"partition_key": decade}
            if only_checks is not None:
                partition, tags = {}, {**tags, "dagster/partition": decade}
            result = job.execute_in_process(
                instance=instance,
                run_config=logs,
                resources={"ray": ray},
                raise_on_error=False,
                tags=tags,
                **partition,
            )
            runs.append(_summarise(decade, result, time.perf_counter() - start))
            runs[-1].only_checks = only_checks is not None
            if inputs and runs[-1].clean:
                instance.add_run_tags(result.run_id, {INPUTS_TAG: with_tables(inputs[decade])})
            out(runs[-1].line())
    finally:
        ray_module = sys.modules.get("ray")
        if ray_module is not None and ray_module.is_initialized():
            from archive_pipeline.core.ray_cluster import stop_ray

            if stop_ray():
                out(f"Ray: the warm model workers served {len(runs)} decade run(s)")
            else:
                out(f"Ray: started once for {len(runs)} decade run(s), now stopped")
        elif settings.RAY_ADDRESS.read() == "inline":
            out("Ray: not used (ARCHIVE_RAY_ADDRESS=inline: the stages ran in this process)")
        else:
            out("Ray: not started (no stage had anything to compute)")
    return runs
