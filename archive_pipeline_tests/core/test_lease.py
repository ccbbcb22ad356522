"""One writer per scope: the warehouse's write lease on a folder (flock) and on S3 (conditional
puts against moto's real HTTP endpoint), across processes, with expiry and a killed holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import boto3
import pytest

from archive_pipeline.core import lease
from archive_pipeline.core.warehouse import Warehouse

HOLD = textwrap.dedent(
    """
    import sys, time
    from archive_pipeline.core.warehouse import Warehouse
    wh = Warehouse(sys.argv[1], storage_options={k: v for k, v in
        (a.split("=", 1) for a in sys.argv[3:])}, writer_lease_s=6)
    with wh.writer("1950s", "transcripts", what="the holder process"):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
    """
)


def _holder(root: str, seconds: float, *options: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, root, str(seconds), *options],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_waits_then_fails_naming_the_holder(tmp_path):
    root = str(tmp_path / "wh")
    proc = _holder(root, 30)
    try:
        wh = Warehouse(root, writer_wait_s=0.5)
        told = []
        with (
            pytest.raises(lease.WriterBusyError) as error,
            wh.writer("1950s", "transcripts", what="me", on_wait=told.append),
        ):
            pass
        message = str(error.value)
        assert "1950s.transcripts" in message and "the holder process" in message
        assert f"pid {proc.pid}" in message and "ARCHIVE_WRITER_WAIT_S" in message
        assert told and "waiting" in told[0]
        # another scope of the same warehouse is free
        with wh.writer("1960s", "transcripts", what="me"):
            pass
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_holder_releases_a_folder_lease_at_once(tmp_path):
    root = str(tmp_path / "wh")
    proc = _holder(root, 60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with Warehouse(root, writer_wait_s=2).writer("1950s", "transcripts", what="next"):
        pass


def test_the_waiter_gets_the_lease_when_the_holder_finishes(tmp_path):
    root = str(tmp_path / "wh")
    proc = _holder(root, 1.5)
    start = time.monotonic()
    with Warehouse(root, writer_wait_s=30).writer("1950s", "transcripts", what="next"):
        waited = time.monotonic() - start
    proc.wait()
    assert proc.returncode == 0
    assert waited > 0.5  # it waited for the holder (which held it 1.5 s) instead of failing


def test_two_writers_in_one_process_exclude_each_other(tmp_path):
    """flock is per open file: a second Warehouse object in the same process is a second
    writer (POSIX record locks would have let it in)."""
    root = str(tmp_path / "wh")
    second = Warehouse(root, writer_wait_s=0)
    with (
        Warehouse(root).writer("1950s", "shots", what="first"),
        pytest.raises(lease.WriterBusyError, match="first"),
        second.writer("1950s", "shots", what="second"),
    ):
        pass


@pytest.mark.s3
@pytest.mark.slow
def test_s3_lease_excludes_expires_and_is_taken_over_once(s3_endpoint):
    bucket = f"leases-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    root = f"s3://{bucket}/warehouse"
    options = ("aws_endpoint=" + s3_endpoint, "aws_region=us-east-1", "allow_http=true")
    storage = dict(o.split("=", 1) for o in options)
    proc = _holder(root, 60, *options)
    try:
        waiter = Warehouse(root, storage_options=storage, writer_wait_s=1)
        with (
            pytest.raises(lease.WriterBusyError, match="the holder process"),
            waiter.writer("1950s", "transcripts", what="second"),
        ):
            pass
        # the holder renews (every 2 s of its 6 s lease): still held after its first expiry
        time.sleep(7)
        waiter = Warehouse(root, storage_options=storage, writer_wait_s=0)
        with (
            pytest.raises(lease.WriterBusyError),
            waiter.writer("1950s", "transcripts", what="third"),
        ):
            pass
        os.kill(proc.pid, signal.SIGKILL)  # stops renewing: its lease expires within 6 s
        proc.wait()
        start = time.monotonic()
        wh = Warehouse(root, storage_options=storage, writer_wait_s=20, writer_lease_s=6)
        with wh.writer("1950s", "transcripts", what="after the kill"):
            assert time.monotonic() - start < 15
            key = "warehouse/_leases/1950s.transcripts.json"
            body = boto3.client("s3", endpoint_url=s3_endpoint).get_object(Bucket=bucket, Key=key)
            assert b"after the kill" in body["Body"].read()
        # released: the object is gone
        listed = boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(
            Bucket=bucket, Prefix="warehouse/_leases/"
        )
        assert listed.get("KeyCount", 0) == 0
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.s3
def test_s3_holder_that_lost_its_lease_commits_nothing(s3_endpoint):
    bucket = f"leases-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    backend = lease.S3Leases(bucket, "wh", ttl_s=5, client_options={"endpoint_url": s3_endpoint})
    with lease.hold(backend, "1950s.shots", what="slow", wait_s=0, where="test") as held:
        # another writer overwrites the lease object (as a takeover after expiry would)
        backend.client.put_object(Bucket=bucket, Key="wh/_leases/1950s.shots.json", Body=b"{}")
        assert not backend.renew(held.holder)
        held._lost.set()  # what the heartbeat does when a renewal is refused
        with pytest.raises(lease.LeaseLostError, match="expired and another writer took it"):
            held.check()
