"""ray_cluster.yaml is a valid Ray cluster-launcher config with the fields the code relies on."""

import json
import re
from pathlib import Path

import jsonschema
import ray
import yaml

REPO = Path(__file__).resolve().parents[1]


def load():
    return yaml.safe_load((REPO / "ray_cluster.yaml").read_text())


def test_validates_against_rays_own_schema():
    schema = json.loads((Path(ray.__file__).parent / "autoscaler/ray-schema.json").read_text())
    jsonschema.validate(load(), schema)


def test_head_and_gpu_worker_group():
    config = load()
    assert config["provider"]["type"] == "aws"
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    assert types[config["head_node_type"]]["resources"].get("CPU") == 0  # no model work on head
    gpu = [t for name, t in types.items() if t.get("resources", {}).get("GPU", 0) > 0]
    assert gpu, "no GPU worker group"
    for group in gpu:
        assert 0 <= group["min_workers"] <= group["max_workers"] <= config["max_workers"]


def test_nodes_install_this_package_and_ray_listens_where_the_docs_say():
    config = load()
    setup = " ".join(config["setup_commands"])
    assert "uv.lock" in setup or "--frozen" in setup
    # workers run every model stage: the same extras as the local environment (Makefile)
    extras = re.search(r"^EXTRAS := (.*)$", (REPO / "Makefile").read_text(), re.M).group(1)
    for extra in re.findall(r"--extra (\w+)", extras):
        if extra != "dev":
            assert f"--extra {extra}" in setup, extra
    assert "-e ~/archive_pipeline" in setup
    assert "/home/ubuntu/archive_pipeline" in config["file_mounts"]
    head = " ".join(config["head_start_ray_commands"])
    assert "--head" in head and "--port=6379" in head and "--dashboard-host=127.0.0.1" in head
    assert "RAY_AUTH_MODE=token" in " ".join(config["worker_start_ray_commands"])
    readme = (REPO / "README.md").read_text()
    assert "ARCHIVE_RAY_ADDRESS" in readme and ":6379" in readme
