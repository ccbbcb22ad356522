"""The S3 media store against a real S3 HTTP endpoint (moto on 127.0.0.1)."""

import collections
import threading
import uuid

import boto3
import dagster as dg
import pytest
from dagster_aws.s3 import S3Resource

from archive_pipeline.core.inventory import scan_inventory
from archive_pipeline.core.warehouse import Warehouse
from archive_pipeline.defs.catalog.assets import media_catalog
from archive_pipeline.defs.resources import LanceWarehouse, RayResource, S3MediaStore
from archive_pipeline_tests import helpers

pytestmark = pytest.mark.s3


@pytest.fixture
def bucket(s3_endpoint, shared_media):
    name = f"archive-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=name)
    client.upload_file(str(shared_media / "speech/jfk.flac"), name, "media/1960s/jfk.flac")
    client.upload_file(str(shared_media / "video/bikes.mp4"), name, "media/tv/bikes.mp4")
    client.put_object(Bucket=name, Key="media/tv/bikes.mp4.json", Body=b'{"year": 1999}')
    client.put_object(Bucket=name, Key="media/1960s/empty.wav", Body=b"")
    client.put_object(Bucket=name, Key="other/outside_prefix.wav", Body=b"x")
    return client, name


def test_inventory_over_s3(bucket, s3_endpoint):
    _, name = bucket
    store = S3MediaStore(
        bucket=name, prefix="media", s3=S3Resource(endpoint_url=s3_endpoint)
    ).get_store()
    inventory = scan_inventory(store)
    got = {i.key: (i.decade, i.uri) for i in inventory.items}
    assert got == {
        "1960s/jfk.flac": ("1960s", f"s3://{name}/media/1960s/jfk.flac"),
        "1960s/empty.wav": ("1960s", f"s3://{name}/media/1960s/empty.wav"),
        "tv/bikes.mp4": ("1990s", f"s3://{name}/media/tv/bikes.mp4"),
    }
    assert all(i.obj.etag for i in inventory.items)


def test_catalog_over_s3_reads_without_modifying(bucket, s3_endpoint, tmp_path):
    client, name = bucket
    before = {o["Key"]: o["ETag"] for o in client.list_objects_v2(Bucket=name)["Contents"]}
    resources = {
        "media_store": S3MediaStore(
            bucket=name, prefix="media", s3=S3Resource(endpoint_url=s3_endpoint)
        ),
        "warehouse": LanceWarehouse(root=str(tmp_path / "wh")),
        "ray": RayResource(address="inline"),
    }
    for decade in ("1960s", "1990s"):
        assert helpers.materialize(
            [media_catalog], partition_key=decade, resources=resources
        ).success
    wh = Warehouse(str(tmp_path / "wh"))
    rows = {r["store_key"]: r for r in wh.read("media_catalog").to_pylist()}
    assert rows["1960s/jfk.flac"]["duration_s"] == pytest.approx(11.0, abs=0.1)
    assert rows["tv/bikes.mp4"]["frame_count"] == 250 and rows["tv/bikes.mp4"]["etag"]
    assert wh.read("failures").column("error_class").to_pylist() == ["EmptyFileError"]
    after = {o["Key"]: o["ETag"] for o in client.list_objects_v2(Bucket=name)["Contents"]}
    assert after == before


def test_s3_inbox_into_s3_warehouse(bucket, s3_endpoint):
    """The production shape by configuration alone: media and Lance tables both on S3."""
    client, name = bucket
    client.create_bucket(Bucket=f"{name}-lance")
    warehouse = LanceWarehouse(
        root=f"s3://{name}-lance/warehouse",
        s3_endpoint_url=s3_endpoint,
        s3_region="us-east-1",
    )
    resources = {
        "media_store": S3MediaStore(
            bucket=name, prefix="media", s3=S3Resource(endpoint_url=s3_endpoint)
        ),
        "warehouse": warehouse,
        "ray": RayResource(address="inline"),
    }
    for _ in range(2):  # the second run is a cache hit and commits nothing
        result = helpers.materialize([media_catalog], partition_key="1960s", resources=resources)
        assert result.success
    metadata = result.asset_materializations_for_node("media_catalog")[0].metadata
    # jfk cached, the empty file failed for good (not retried while unchanged)
    assert metadata["reused_from_cache"].value == 2 and metadata["committed"].value is False
    assert metadata["computed"].value == 0 and metadata["failures"].value == 1
    wh = warehouse.get_warehouse()
    assert wh.read("media_catalog").column("store_key").to_pylist() == ["1960s/jfk.flac"]
    assert wh.read("failures").column("store_key").to_pylist() == ["1960s/empty.wav"]
    listed = client.list_objects_v2(Bucket=f"{name}-lance", Prefix="warehouse/media_catalog.lance/")
    assert listed["KeyCount"] > 0


def test_concurrent_decades_on_s3_lose_nothing(s3_endpoint):
    """Three writers replace three decades of one S3 table at once (Lance conditional commits)."""
    from archive_pipeline_tests.core.test_warehouse import rows, scope

    name = f"lance-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    resource = LanceWarehouse(
        root=f"s3://{name}/wh",
        s3_endpoint_url=s3_endpoint,
        s3_region="us-east-1",
    )
    resource.get_warehouse().table("failures")
    errors = []

    def write(decade):
        try:
            wh = resource.get_warehouse()
            for generation in range(3):
                wh.replace(
                    "failures",
                    rows(decade, 10 + generation, f"{decade}-{generation}"),
                    scope=scope(decade),
                )
        except Exception as exc:  # reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=write, args=(d,)) for d in ("1960s", "1970s", "1980s")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    got = resource.get_warehouse().read("failures").column("message").to_pylist()
    assert collections.Counter(got) == {"1960s-2": 12, "1970s-2": 12, "1980s-2": 12}


def test_each_object_is_fetched_once_per_run_and_a_new_version_again(bucket, s3_endpoint, tmp_path):
    """The fetch cache: stages of a run share one download; a changed object is fetched anew;
    the cache stays under its size; the run's teardown removes it."""
    from archive_pipeline.core.s3_store import S3Store

    client, name = bucket
    store = S3Store(
        bucket=name, prefix="media", endpoint_url=s3_endpoint, cache_dir=str(tmp_path / "c")
    )
    gets = []
    store.client.meta.events.register("before-call.s3.GetObject", lambda **kw: gets.append(1))
    paths = []
    for _ in range(3):  # e.g. transcripts, speaker_turns, shots
        with store.local_path("1960s/jfk.flac") as path:
            paths.append(path)
            assert path.read_bytes()[:4] == b"fLaC"
    assert len(set(paths)) == 1 and len(gets) == 1
    client.put_object(Bucket=name, Key="media/1960s/jfk.flac", Body=b"fLaC new version")
    with store.local_path("1960s/jfk.flac") as path:
        assert path.read_bytes() == b"fLaC new version"
    assert len(gets) == 2
    tiny = S3Store(
        bucket=name,
        prefix="media",
        endpoint_url=s3_endpoint,
        cache_dir=str(tmp_path / "t"),
        cache_max_mb=0,
    )
    from archive_pipeline.core import store as store_module  # the fetch cache

    for key in ("1960s/jfk.flac", "tv/bikes.mp4"):
        with tiny.local_path(key):
            pass
    store_module.evict(tmp_path / "t", 0, keep=tmp_path / "none", grace_s=0)
    assert not list((tmp_path / "t").iterdir())  # past its size, least recently used first out
    media = S3MediaStore(bucket=name, prefix="media", s3=S3Resource(endpoint_url=s3_endpoint))
    with media.get_store().local_path("1960s/jfk.flac") as path:
        assert path.exists() and "cache/media" in str(path)
    media.teardown_after_execution(dg.build_init_resource_context())
    assert not path.exists()


def test_a_folder_marker_named_like_media_is_one_failure(bucket, s3_endpoint, tmp_path):
    """S3's nearest thing to a folder named like media ('reel.mp4/' holding objects)."""
    client, name = bucket
    client.put_object(Bucket=name, Key="media/1960s/reel.mp4/", Body=b"")
    client.put_object(Bucket=name, Key="media/1960s/reel.mp4/notes.txt", Body=b"x")
    resources = {
        "media_store": S3MediaStore(
            bucket=name, prefix="media", s3=S3Resource(endpoint_url=s3_endpoint)
        ),
        "warehouse": LanceWarehouse(root=str(tmp_path / "wh")),
        "ray": RayResource(address="inline"),
    }
    assert helpers.materialize([media_catalog], partition_key="1960s", resources=resources).success
    wh = Warehouse(str(tmp_path / "wh"))
    assert wh.read("media_catalog").column("store_key").to_pylist() == ["1960s/jfk.flac"]
    failures = {r["store_key"]: r["error_class"] for r in wh.read("failures").to_pylist()}
    assert failures == {"1960s/empty.wav": "EmptyFileError", "1960s/reel.mp4": "NotAFile"}
