"""The inbox sensor over a local folder and over S3 (moto on 127.0.0.1), against what the
instance says was catalogued; the nightly backfill's ticks."""

import json
import os
import time
import uuid

import boto3
import dagster as dg
import pytest
from dagster_aws.s3 import S3Resource

from archive_pipeline.defs.automation.sensors import inbox_sensor
from archive_pipeline.defs.resources import LocalMediaStore, S3MediaStore
from archive_pipeline_tests.helpers import decade_instance, local_resources, materialize


def sense(store, cursor=None, instance=None):
    instance = instance if instance is not None else dg.DagsterInstance.ephemeral()
    with dg.build_sensor_context(
        cursor=cursor, resources={"media_store": store}, instance=instance
    ) as context:
        return inbox_sensor(context)


def tick(store, cursor=None, instance=None):
    result = sense(store, cursor, instance)
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
    instance = decade_instance()
    decades, keys, cursor = tick(inbox.store, instance=instance)
    assert decades == ["1980s", "1990s"]
    assert tick(inbox.store, cursor, instance=instance)[0] == []  # nothing changed
    # several objects in the same second, in two decades, after the cursor was taken
    inbox.put("1980s/c.wav")
    inbox.put("1980s/d.wav")
    inbox.put("e_1961.flac")
    decades, keys2, cursor = tick(inbox.store, cursor, instance=instance)
    assert decades == ["1960s", "1980s"]
    assert not set(keys) & set(keys2)


def run_requested(instance, store, decades):
    """What the requested runs' media_catalog records: each decade's inbox digest now."""
    from archive_pipeline.core.inventory import NO_MEDIA, scan_inventory

    digests = scan_inventory(store.get_store()).decade_digests()
    for decade in decades:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                "media_catalog",
                partition=decade,
                metadata={"inbox_digest": digests.get(decade, NO_MEDIA)},
            )
        )


def test_sensor_sees_deletions_and_metadata_changes(inbox):
    instance = decade_instance("1980s", "undated", "1970s", "2000s")
    inbox.put("1980s/a.wav")
    inbox.put("x.wav")
    decades, _, cursor = tick(inbox.store, instance=instance)
    run_requested(instance, inbox.store, decades)
    inbox.delete("1980s/a.wav")  # the newest object, gone: the cursor does not depend on it
    decades, _, cursor = tick(inbox.store, cursor, instance=instance)
    assert decades == ["1980s"]  # the decade must be re-run to drop its rows
    run_requested(instance, inbox.store, decades)
    inbox.put("x.wav.json", json.dumps({"year": 1972}).encode())
    decades, _, cursor = tick(inbox.store, cursor, instance=instance)
    assert decades == ["1970s", "undated"]  # moved: both decades change
    run_requested(instance, inbox.store, decades)
    inbox.put("later_2001.wav")
    assert tick(inbox.store, cursor, instance=instance)[0] == ["2000s"]


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
    result = sense(inbox.store)
    assert not result.run_requests and "all as catalogued" in result.skip_reason.skip_message


def test_decades_become_partitions_when_media_for_them_appear(inbox):
    inbox.put("1980s/a.wav")
    result = sense(inbox.store)
    (request,) = result.dynamic_partitions_requests
    assert request.partitions_def_name == "decades" and list(request.partition_keys) == ["1980s"]
    instance = decade_instance("1980s")
    assert not sense(inbox.store, instance=instance).dynamic_partitions_requests


def test_decades_catalogued_by_any_run_are_not_requested_again(tmp_path):
    """What `make demo`, `archive-pipeline run`, the UI or a backfill catalogued is not run
    again when the sensor is switched on: it compares the inbox with media_catalog's record."""
    from archive_pipeline.defs.catalog.assets import media_catalog

    inbox = LocalInbox(tmp_path / "inbox")
    inbox.put("1980s/a.wav")
    inbox.put("tape_1994.mp3")
    instance = decade_instance()
    resources = local_resources(inbox.root, tmp_path / "wh")
    for decade in ("1980s", "1990s"):
        assert materialize(
            [media_catalog], partition_key=decade, instance=instance, resources=resources
        ).success
    result = sense(inbox.store, instance=instance)  # switched on now: no cursor
    assert not result.run_requests, "a catalogued decade was requested again"
    assert "2 media items in 2 decades, all as catalogued" in result.skip_reason.skip_message
    inbox.put("1980s/b.wav")  # a new file: only its decade, once
    decades, _, cursor = tick(inbox.store, instance=instance)
    assert decades == ["1980s"]
    assert tick(inbox.store, cursor, instance=instance)[0] == []  # requested, not yet run
    inbox.delete("tape_1994.mp3")  # the 1990s lost their only item: run to remove its rows
    assert tick(inbox.store, cursor, instance=instance)[0] == ["1990s"]


def nightly_tick(tmp_path, monkeypatch, *, cursor, now):
    from archive_pipeline.definitions import defs
    from archive_pipeline.defs.automation import sensors
    from archive_pipeline.defs.automation.sensors import nightly_backfill
    from archive_pipeline.defs.resources import LanceWarehouse

    resources = {
        "media_store": LocalMediaStore(root=str(tmp_path / "inbox")),
        "warehouse": LanceWarehouse(root=str(tmp_path / "warehouse")),
    }
    monkeypatch.setattr(sensors, "utc_now", lambda: now)
    with dg.build_sensor_context(
        cursor=cursor, resources=resources, definitions=defs(), instance=decade_instance()
    ) as context:
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
    # the same night again: nothing more, and the tick says what happened
    again = nightly_tick(
        tmp_path, monkeypatch, cursor=result.cursor, now=night + dt.timedelta(days=1, hours=5)
    )
    assert not again.run_requests
    assert again.skip_reason.skip_message == (
        "the backfill of the night of 2026-11-22 was launched; next at 2026-11-23 02:00 UTC"
    )


def test_an_armed_nightly_says_it_has_launched_nothing(tmp_path, monkeypatch):
    import datetime as dt

    LocalInbox(tmp_path / "inbox").put("1980s/interview.wav")
    now = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)
    armed = nightly_tick(tmp_path, monkeypatch, cursor=None, now=now)
    later = nightly_tick(tmp_path, monkeypatch, cursor=armed.cursor, now=now.replace(hour=15))
    assert later.skip_reason.skip_message == (
        "armed; nothing launched yet; next at 2026-11-22 02:00 UTC"
    )
    # a cursor of the earlier version (a bare time) was written when a backfill was launched
    old = nightly_tick(tmp_path, monkeypatch, cursor="2026-11-21T02:00:00+00:00", now=now)
    assert "was launched" in old.skip_reason.skip_message
