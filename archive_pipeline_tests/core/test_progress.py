"""Per-item progress lines: n/N, file, seconds, ETA; failures with their error and traceback."""

from archive_pipeline.core.compute import InlineCompute, StageResources
from archive_pipeline.core.progress import ItemProgress
from archive_pipeline.core.warehouse import Warehouse
from archive_pipeline.stages.base import BaseStage, CatalogItem, ItemFailure
from archive_pipeline.stages.partition import process_partition


class Lines:
    """Collects what a Dagster `context.log` would receive."""

    def __init__(self):
        self.lines: list[tuple[str, str]] = []

    def info(self, msg):
        self.lines.append(("info", msg))

    def warning(self, msg):
        self.lines.append(("warning", msg))


class Flaky(BaseStage):
    """Test stage: item 'a' is done with no rows, 'b' is refused, 'c' raises in the worker."""

    name = "transcripts"
    tables = ("transcripts",)
    code_version = "test"
    model_id = "test"
    params: dict = {}
    resources = StageResources()

    def setup(self):
        pass

    def process(self, item):
        if item.store_key == "b.wav":
            return ItemFailure("NoAudioStreamError", "no audio stream")
        if item.store_key == "c.wav":
            raise ValueError("decoder exploded")
        return {}

    def content_id(self, item):
        return item.sha256

    def rows(self, item, value, *, decade):
        return {"transcripts": []}


def test_one_line_per_item_with_failures_and_the_workers_traceback(tmp_path):
    items = [
        CatalogItem(f"file:///inbox/{k}", k, f"m{i}", f"sha{i}", 1.0)
        for i, k in enumerate(["a.wav", "b.wav", "c.wav"])
    ]
    log = Lines()
    report = process_partition(
        stage=Flaky(),
        decade="1980s",
        items=items,
        warehouse=Warehouse(str(tmp_path)),
        compute=InlineCompute(),
        log=log,
    )
    assert report.n_failed == 2
    levels = [level for level, _ in log.lines]
    texts = [text for _, text in log.lines]
    assert texts[0] == "transcripts 1980s: 3 item(s), 0 unchanged (cached), 3 to compute"
    assert texts[1].startswith("transcripts 1980s: 1/3 a.wav ok in ") and "(ETA " in texts[1]
    assert levels[2] == "warning" and texts[2].startswith("transcripts 1980s: 2/3 b.wav FAILED")
    assert "NoAudioStreamError: no audio stream" in texts[2]
    assert levels[3] == "warning" and "3/3 c.wav FAILED" in texts[3]
    assert "ValueError: decoder exploded" in texts[3] and "(last item)" in texts[3]
    assert "Traceback (most recent call last)" in texts[3]  # what the worker saw
    assert texts[4].startswith("transcripts 1980s: 3 item(s) processed, 2 failed, in ")
    # a re-run computes nothing: one line, no per-item lines
    log.lines.clear()
    process_partition(
        stage=Flaky(),
        decade="1980s",
        items=items[:1],
        warehouse=Warehouse(str(tmp_path)),
        compute=InlineCompute(),
        log=log,
    )
    assert [t for _, t in log.lines] == [
        "transcripts 1980s: 1 item(s), 1 unchanged (cached), 0 to compute"
    ]


def test_eta_is_wall_time_per_finished_item_times_items_left(monkeypatch):
    import archive_pipeline.core.progress as progress

    clock = iter([100.0, 130.0, 190.0])
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    log = Lines()
    tracker = ItemProgress(log, stage="shots", decade="1990s", total=5)  # starts at 100 s
    tracker.item_done("a.mp4", seconds=12.0)  # 30 s for 1 item, 4 left
    tracker.item_done("b.mp4", seconds=61.0)  # 90 s for 2 items, 3 left
    assert log.lines[0][1] == "shots 1990s: 1/5 a.mp4 ok in 12.0 s (ETA 2 min 00 s)"
    assert log.lines[1][1] == "shots 1990s: 2/5 b.mp4 ok in 1 min 01 s (ETA 2 min 15 s)"
