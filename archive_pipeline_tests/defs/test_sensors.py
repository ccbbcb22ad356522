"""The inbox sensor over a local folder and over S3 (moto on 127.0.0.1)."""

import json
import os
import time
import uuid

import boto3
import dagster as dg
import pytest
from dagster_aws.s3 import S3Resource

from archive_pipeline.defs.automation.sensors import inbox_sensor
from archive_pipeline.resources import LocalMediaStore, S3MediaStore


def tick(store, cursor=None):
    with dg.build_sensor_context(cursor=cursor, resources={"media_store": store}) as context:
        result = inbox_sensor(context)
    requests = result.run_requests or []
    return (
        sorted(r.partition_key for r in requests),
        [r.run_key for r in requests],
        result.cursor or cursor,
    )


class LocalInbox:
    def __init__(self, root):
        self.root = root
        self.store = LocalMediaStore(root=str(root))

    def put(self, key, data=b"media"):
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def delete(self, key):
        (self.root / key).unlink()


class S3Inbox:
    def __init__(self, endpoint):
        self.bucket = f"archive-{uuid.uuid4().hex[:8]}"
        self.client = boto3.client("s3", endpoint_url=endpoint)
        self.client.create_bucket(Bucket=self.bucket)
        self.store = S3MediaStore(
            bucket=self.bucket,
            prefix="inbox",
            s3=S3Resource(endpoint_url=endpoint, region_name="us-east-1"),
        )

    def put(self, key, data=b"media"):
        self.client.put_object(Bucket=self.bucket, Key=f"inbox/{key}", Body=data)

    def delete(self, key):
        self.client.delete_object(Bucket=self.bucket, Key=f"inbox/{key}")


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def inbox(request, tmp_path):
    if request.param == "local":
        (tmp_path / "inbox").mkdir()
        return LocalInbox(tmp_path / "inbox")
    return S3Inbox(request.getfixturevalue("s3_endpoint"))


def test_sensor_requests_one_run_per_touched_decade(inbox):
    inbox.put("1980s/a.wav")
    inbox.put("b_1994.mp4")
    inbox.put("notes.txt", b"not media")
    decades, keys, cursor = tick(inbox.store)
    assert decades == ["1980s", "1990s"]
    assert tick(inbox.store, cursor)[0] == []  # nothing changed
    # several objects in the same second, in two decades, after the cursor was taken
    inbox.put("1980s/c.wav")
    inbox.put("1980s/d.wav")
    inbox.put("e_1961.flac")
    decades, keys2, cursor = tick(inbox.store, cursor)
    assert decades == ["1960s", "1980s"]
    assert not set(keys) & set(keys2)


def test_sensor_sees_deletions_and_metadata_changes(inbox):
    inbox.put("1980s/a.wav")
    inbox.put("x.wav")
    _, _, cursor = tick(inbox.store)
    inbox.delete("1980s/a.wav")  # the newest object, gone: the cursor does not depend on it
    decades, _, cursor = tick(inbox.store, cursor)
    assert decades == ["1980s"]  # the decade must be re-run to drop its rows
    inbox.put("x.wav.json", json.dumps({"year": 1972}).encode())
    decades, _, cursor = tick(inbox.store, cursor)
    assert decades == ["1970s", "undated"]  # moved: both decades change
    inbox.put("later_2001.wav")
    assert tick(inbox.store, cursor)[0] == ["2000s"]


def test_run_keys_are_deterministic_and_never_reused(inbox):
    inbox.put("1980s/a.wav", b"v1")
    _, keys_a, cursor = tick(inbox.store)
    assert tick(inbox.store)[1] == keys_a  # same cursor and store state: same keys
    time.sleep(0.01)
    inbox.put("1980s/a.wav", b"version 2")
    if isinstance(inbox, LocalInbox):
        os.utime(inbox.root / "1980s/a.wav", (1, 1))
    _, keys_b, cursor = tick(inbox.store, cursor)
    inbox.put("1980s/a.wav", b"v1")
    if isinstance(inbox, LocalInbox):
        os.utime(inbox.root / "1980s/a.wav", (2, 2))
    _, keys_c, _ = tick(inbox.store, cursor)
    assert len({*keys_a, *keys_b, *keys_c}) == 3


def test_empty_store_skips(inbox):
    with dg.build_sensor_context(resources={"media_store": inbox.store}) as context:
        result = inbox_sensor(context)
    assert not result.run_requests and "no change" in result.skip_reason.skip_message


def nightly_tick(tmp_path, monkeypatch, *, cursor, now):
    from archive_pipeline.definitions import defs
    from archive_pipeline.defs.automation import sensors
    from archive_pipeline.defs.automation.sensors import nightly_backfill
    from archive_pipeline.resources import LanceWarehouse

    resources = {
        "media_store": LocalMediaStore(root=str(tmp_path / "inbox")),
        "warehouse": LanceWarehouse(root=str(tmp_path / "warehouse")),
    }
    monkeypatch.setattr(sensors, "utc_now", lambda: now)
    with dg.build_sensor_context(cursor=cursor, resources=resources, definitions=defs()) as context:
        return nightly_backfill(context)


def test_nightly_backfill_is_one_backfill_of_every_asset_over_decades_with_media(
    tmp_path, monkeypatch
):
    import datetime as dt

    inbox = LocalInbox(tmp_path / "inbox")
    inbox.put("1980s/interview.wav")
    inbox.put("tape_1994.mp3")
    night = dt.datetime(2026, 11, 21, 2, 0, tzinfo=dt.UTC)
    # switched on at 10:00: armed for the next 02:00, like a schedule (no backfill now)
    armed = nightly_tick(tmp_path, monkeypatch, cursor=None, now=night + dt.timedelta(hours=8))
    assert not armed.run_requests and "armed" in armed.skip_reason.skip_message
    # the next night, after 02:00: one request that the daemon turns into one backfill
    result = nightly_tick(
        tmp_path, monkeypatch, cursor=armed.cursor, now=night + dt.timedelta(days=1, minutes=3)
    )
    (request,) = result.run_requests
    subset = request.asset_graph_subset
    assert subset is not None  # a backfill, not runs
    assert len(subset.asset_keys) == 10  # every asset
    for partitions in subset.partitions_subsets_by_asset_key.values():
        assert set(partitions.get_partition_keys()) == {"1980s", "1990s"}
    assert request.tags["archive/trigger"] == "nightly_backfill"
    # the same night again: nothing more
    again = nightly_tick(
        tmp_path, monkeypatch, cursor=result.cursor, now=night + dt.timedelta(days=1, hours=5)
    )
    assert not again.run_requests and "next at 2026-11-23 02:00" in again.skip_reason.skip_message
