"""The production instance profile: Dagster storage in a real PostgreSQL server on 127.0.0.1."""

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

from archive_pipeline_tests.helpers import (
    _is_loopback,
    catalog_one_file,
    free_port,
    listeners_of,
)

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        pytest.fail("PostgreSQL server binaries not found: `make install` installs postgresql")
    return Path(found[-1]).parent


@pytest.fixture(scope="module")
def postgres():
    """initdb + pg_ctl on 127.0.0.1 with a private socket dir; stopped with pg_ctl."""
    bindir = _pg_bin()
    root = Path(tempfile.mkdtemp(prefix="archive-pg-"))  # /tmp: reachable by the postgres user
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sock}"
    subprocess.run(
        [
            *prefix,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-w",
            "-l",
            str(root / "log"),
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        pid = int((data / "postmaster.pid").read_text().split()[0])
        listening = listeners_of({pid})
        assert listening and all(_is_loopback(ip) for ip, _ in listening), listening
        conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE dagster")
        conn.close()
        yield {"host": "127.0.0.1", "port": port, "user": "postgres", "db": "dagster"}
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def test_partitioned_run_is_recorded_in_postgres(postgres, tmp_path, monkeypatch, shared_media):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.postgres.yaml", home / "dagster.yaml")
    for name, value in {
        "DAGSTER_PG_USERNAME": postgres["user"],
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_HOST": postgres["host"],
        "DAGSTER_PG_DB": postgres["db"],
        "DAGSTER_PG_PORT": str(postgres["port"]),
    }.items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = catalog_one_file(tmp_path, shared_media, instance)
        assert result.success
    conn = psycopg2.connect(
        host=postgres["host"], port=postgres["port"], user="postgres", dbname=postgres["db"]
    )
    with conn, conn.cursor() as cur:
        cur.execute("SELECT run_id, status, partition FROM runs")
        runs = cur.fetchall()
        cur.execute("SELECT count(*) FROM event_logs WHERE run_id = %s", (result.run_id,))
        events = cur.fetchone()[0]
    conn.close()
    assert (result.run_id, "SUCCESS", "1960s") in runs
    assert events > 0
