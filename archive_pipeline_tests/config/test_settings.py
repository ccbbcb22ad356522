"""One source per setting: declared once, read at run time, the README generated from it, and
the layers only pointing down."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from archive_pipeline.config import settings
from archive_pipeline.definitions import defs
from archive_pipeline.defs import resources

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "archive_pipeline"
# the only modules that may touch os.environ: the settings and the command-line entry points
ENVIRON_ALLOWED = {"settings.py", "cli.py", "search/cli.py"}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), path.read_text()


def test_the_readme_table_is_the_settings_module():
    readme = (REPO / "README.md").read_text()
    assert settings.markdown_table() in readme, (
        "README settings table differs from archive_pipeline/config/settings.py: run "
        "`archive-pipeline settings --write README.md`"
    )
    assert settings.replace_table(readme) == readme


def test_every_variable_the_code_names_is_a_declared_setting():
    named = set()
    for _, text in _modules():
        named |= set(re.findall(r"[\"'`$](ARCHIVE_[A-Z_]+)\b", text))
    named = {n for n in named if not n.endswith("_")}  # prefixes in prose (ARCHIVE_WHISPER_*)
    retired = set(settings.RETIRED) | set(settings.CONSTANTS)  # named to say where they went
    assert named - set(settings.BY_ENV) - retired == set()
    assert len(settings.BY_ENV) == len(settings.SETTINGS), "a variable is declared twice"


def test_resource_fields_and_settings_match_one_to_one():
    classes = [
        c
        for c in vars(resources).values()
        if isinstance(c, type) and issubclass(c, resources.SettingsResource) and c.settings_group
    ]
    groups = set()
    for cls in classes:
        declared = settings.group(cls.settings_group)
        fields = {n for n, f in cls.model_fields.items() if f.default is None}
        assert set(declared) == fields, cls.__name__
        for name in declared:  # unset means the variable: the UI's description says which
            assert declared[name].env in cls.model_fields[name].description
        groups.add(cls.settings_group)
    used = {g for s in settings.SETTINGS for g in s.groups}
    assert used - groups == {"search_service"}  # read by the service's CLI, not a resource


def test_values_are_typed_and_bad_values_name_the_variable(monkeypatch):
    monkeypatch.setenv("ARCHIVE_RAY_DASHBOARD", "yes")
    monkeypatch.setenv("ARCHIVE_WORKER_MEMORY_MB", " 3000 ")
    monkeypatch.setenv("ARCHIVE_WRITER_WAIT_S", "")  # empty: the default
    assert settings.RAY_DASHBOARD.read() is True
    assert settings.WORKER_MEMORY_MB.read() == 3000
    assert settings.WRITER_WAIT_S.read() == settings.WRITER_WAIT_S.default
    monkeypatch.setenv("ARCHIVE_RAY_NUM_CPUS", "two")
    with pytest.raises(settings.SettingError, match="ARCHIVE_RAY_NUM_CPUS"):
        settings.RAY_NUM_CPUS.read()
    monkeypatch.setenv("ARCHIVE_WHISPER_OPTIONS", "beam_size=3")
    with pytest.raises(settings.SettingError, match="ARCHIVE_WHISPER_OPTIONS"):
        settings.WHISPER_OPTIONS.read()


def test_a_retired_or_misspelt_variable_is_refused_saying_where_its_value_goes(monkeypatch):
    monkeypatch.setenv("ARCHIVE_WHISPER_DEVICE", "cuda")
    monkeypatch.setenv("ARCHIVE_TEXT_SAMPLING_S", "2")
    monkeypatch.setenv("ARCHIVE_RAY_CONNECT_TIMEOUT_S", "5")
    monkeypatch.setenv("ARCHIVE_WHISPR_MODEL", "tiny")
    monkeypatch.setenv("ARCHIVE_OLD_EMPTY", "")  # set but empty: as if unset
    problems = settings.validate()
    assert "ARCHIVE_WHISPER_DEVICE is set but is no setting: use ARCHIVE_DEVICE instead" in problems
    assert any(
        "ARCHIVE_TEXT_SAMPLING_S" in p and "KEYFRAME_OPTIONS text_every_s" in p for p in problems
    )
    assert any("ARCHIVE_RAY_CONNECT_TIMEOUT_S" in p and "CONNECT_TIMEOUT_S" in p for p in problems)
    assert any("ARCHIVE_WHISPR_MODEL" in p and "typo" in p for p in problems)
    assert not any("ARCHIVE_OLD_EMPTY" in p for p in problems)
    with pytest.raises(settings.SettingError, match="ARCHIVE_WHISPR_MODEL"):
        settings.require_valid()


def test_where_a_retired_variable_went_exists():
    import dataclasses
    import importlib

    from archive_pipeline.stages.keyframes import KeyframeSettings
    from archive_pipeline.stages.ocr import OcrSettings
    from archive_pipeline.stages.transcription import WhisperSettings
    from archive_pipeline.stages.writer import CommitPolicy

    fields = {
        "ARCHIVE_WHISPER_OPTIONS": WhisperSettings,
        "ARCHIVE_KEYFRAME_OPTIONS": KeyframeSettings,
        "ARCHIVE_OCR_OPTIONS": OcrSettings,
        "ARCHIVE_COMMIT_EVERY": CommitPolicy,
    }
    for old, new in settings.RETIRED.items():
        assert old not in settings.BY_ENV
        env, *key = new.split()
        assert env in settings.BY_ENV, new
        if key:
            assert key[0] in {f.name for f in dataclasses.fields(fields[env])}, new
    for old, constant in settings.CONSTANTS.items():
        assert old not in settings.BY_ENV
        path, _, name = constant.rpartition(".")
        owner_path, _, owner_name = path.rpartition(".")
        try:
            owner = importlib.import_module(f"archive_pipeline.{path}")
        except ModuleNotFoundError:  # a dataclass field: module.Class.field
            owner = getattr(importlib.import_module(f"archive_pipeline.{owner_path}"), owner_name)
        assert hasattr(owner, name), constant


def test_a_structured_setting_takes_its_dataclass_fields_and_names_itself_for_others(
    monkeypatch,
):
    monkeypatch.setenv("ARCHIVE_WHISPER_OPTIONS", '{"beam_size": 3, "batched": true}')
    whisper = resources.SpeechModels().whisper()
    assert (whisper.beam_size, whisper.batched, whisper.compute_type) == (3, True, "int8")
    monkeypatch.setenv("ARCHIVE_WHISPER_OPTIONS", '{"beam": 3}')
    with pytest.raises(settings.SettingError, match=r"ARCHIVE_WHISPER_OPTIONS.*'beam'"):
        resources.SpeechModels().whisper()
    monkeypatch.setenv("ARCHIVE_WHISPER_OPTIONS", '{"model": "tiny"}')  # its own setting
    with pytest.raises(settings.SettingError, match=r"ARCHIVE_WHISPER_OPTIONS.*'model'"):
        resources.SpeechModels().whisper()
    monkeypatch.setenv("ARCHIVE_WHISPER_OPTIONS", '{"temperatures": "0,1.5"}')
    with pytest.raises(settings.SettingError, match="ARCHIVE_WHISPER_OPTIONS temperatures"):
        resources.SpeechModels().whisper()
    monkeypatch.setenv("ARCHIVE_OCR_OPTIONS", '{"min_confidence": 0.7}')
    assert resources.VisionModels().ocr().min_confidence == 0.7


def test_a_field_given_a_value_wins_over_the_variable(monkeypatch):
    monkeypatch.setenv("ARCHIVE_KEYFRAME_OPTIONS", '{"interval_s": 4}')
    assert resources.VisionModels().keyframes().interval_s == 4.0
    given = resources.VisionModels(keyframe_options='{"interval_s": 7.5}')
    assert given.keyframes().interval_s == 7.5


def test_a_variable_set_after_the_definitions_load_takes_effect_at_run_time(
    tmp_path, shared_media, monkeypatch
):
    """The code location is loaded first (as a long-running code server would); the variables
    are set afterwards; the run reads the inbox, warehouse, Ray mode and keyframe interval they
    name."""
    import shutil

    from archive_pipeline.core.warehouse import Warehouse
    from archive_pipeline.defs.catalog.assets import media_catalog
    from archive_pipeline_tests.helpers import materialize

    loaded = defs()
    (tmp_path / "inbox/1960s").mkdir(parents=True)
    shutil.copyfile(shared_media / "speech/jfk.flac", tmp_path / "inbox/1960s/jfk.flac")
    monkeypatch.setenv("ARCHIVE_INBOX", str(tmp_path / "inbox"))
    monkeypatch.setenv("ARCHIVE_WAREHOUSE", str(tmp_path / "later-warehouse"))
    monkeypatch.setenv("ARCHIVE_RAY_ADDRESS", "inline")
    monkeypatch.setenv("ARCHIVE_KEYFRAME_OPTIONS", '{"interval_s": 3.5}')
    seen = {}

    @dg.asset(deps=[media_catalog], partitions_def=media_catalog.partitions_def)
    def probe(vision_models: resources.VisionModels) -> None:
        seen["interval_s"] = vision_models.keyframes().interval_s

    result = materialize([media_catalog, probe], partition_key="1960s", resources=loaded.resources)
    assert result.success
    assert seen == {"interval_s": 3.5}
    rows = Warehouse(str(tmp_path / "later-warehouse")).read("media_catalog")
    assert rows.column("store_key").to_pylist() == ["1960s/jfk.flac"]


def test_loading_the_definitions_reads_no_setting():
    """Importing the package and loading the code location read none of the variables: the
    environment is read when a run, a sensor tick or a command uses a setting."""
    code = """
import os, sys


read = []
real = os.environ

class Spy(dict):
    def get(self, key, default=None):
        read.append(key)
        return real.get(key, default)
    def __getitem__(self, key):
        read.append(key)
        return real[key]
    def __contains__(self, key):
        read.append(key)
        return key in real

os.environ = Spy(real)
import archive_pipeline.definitions as d
d.defs()
from archive_pipeline.config import settings
print(sorted(set(read) & set(settings.BY_ENV)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_settings_import_no_other_module_of_the_package():
    """`paths` (and everything else) reads the settings; the settings read nothing back."""
    import ast

    tree = ast.parse(Path(settings.__file__).read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not {m for m in imported if m and m.startswith("archive_pipeline")}, imported
