"""The console loggers of runs: Dagster's coloured log at INFO (DEBUG with ARCHIVE_VERBOSE) for
runs the daemon launches, and a compact one for the command-line runner: progress lines and
problems only."""

import logging
import sys
import time

import dagster as dg

from archive_pipeline.config import settings
from archive_pipeline.defs.runs import failure_reason

# event type *values* (a run failure's is PIPELINE_FAILURE, Dagster's older name)
_PROBLEM_EVENTS = {
    dg.DagsterEventType.STEP_FAILURE.value,
    dg.DagsterEventType.RUN_FAILURE.value,
    dg.DagsterEventType.RESOURCE_INIT_FAILURE.value,
    "ASSET_CHECK_EVALUATION",
}


class _ProgressFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        clock = time.strftime("%H:%M:%S", time.localtime(record.created))
        decade = (meta.get("job_tags") or {}).get("dagster/partition", "")
        message = meta.get("orig_message", record.getMessage())
        if event is not None and event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            message = (
                f"check {data.asset_key.to_user_string()}:{data.check_name} "
                f"{data.severity.value}: {data.description}"
            )
        elif event is not None and event.event_type_value in _PROBLEM_EVENTS:
            reason = failure_reason(event)
            where = f"step {event.step_key} " if event.step_key else "run "
            if reason:
                message = f"FAILED {where}— {reason}"
        return f"{clock} {decade:>8}  {message}"


class _ProgressFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is None:
            return record.levelno >= logging.INFO
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            return not event.event_specific_data.passed
        return event.event_type_value in _PROBLEM_EVENTS


@dg.logger(
    config_schema={},
    description="Compact console lines for `archive-pipeline run`: the assets' progress lines, "
    "failed checks and step failures (no Dagster event chatter).",
)
def progress_console(init_context: dg.InitLoggerContext) -> logging.Logger:
    """Progress lines on standard output."""
    logger = logging.getLogger(f"archive_pipeline.progress.{init_context.run_id}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_ProgressFormatter())
    handler.addFilter(_ProgressFilter())
    logger.handlers = [handler]
    return logger


@dg.logger(
    config_schema={},
    description="Dagster's coloured console log at INFO: per-item progress, checks, failures; "
    "its DEBUG events (step starts, outputs, engine events) too with ARCHIVE_VERBOSE.",
)
def console(init_context: dg.InitLoggerContext) -> logging.Logger:
    """Dagster's console logger, its level read when the run starts."""
    level = "DEBUG" if settings.VERBOSE.read() else "INFO"
    config = {"log_level": level, "name": "dagster"}
    return dg.colored_console_logger.logger_fn(dg.build_init_logger_context(logger_config=config))
