"""When the nightly backfill runs, and the freshness it promises: search_documents (the table
the search service and downstream teams read) is written between 02:00 UTC and 06:00 UTC every
night. Dagster's daemon evaluates the policy and the UI shows the asset overdue when a night is
missed (the backfill sensor was off, the daemon down, or the backfill failed)."""

import datetime as dt

import dagster as dg

NIGHTLY_HOUR_UTC = 2  # the nightly backfill starts at the first sensor tick after 02:00 UTC
NIGHTLY_WINDOW_H = 4  # and has until 06:00 UTC to write search_documents

nightly_freshness = dg.FreshnessPolicy.cron(
    deadline_cron=f"0 {NIGHTLY_HOUR_UTC + NIGHTLY_WINDOW_H} * * *",
    lower_bound_delta=dt.timedelta(hours=NIGHTLY_WINDOW_H),
    timezone="UTC",
)
