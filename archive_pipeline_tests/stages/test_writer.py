"""The commit policy: one setting, parsed with its keys and ranges checked, and when it is due.
(The writer's batches, resume and sweep are tested through process_partition in
test_checkpoint.py and test_base.py.)"""

from __future__ import annotations

import pytest

from archive_pipeline.config import settings
from archive_pipeline.stages.writer import CommitPolicy


def test_the_policy_reads_its_setting_keys_left_out_keep_their_default():
    assert CommitPolicy.parse(None) == CommitPolicy() == CommitPolicy.parse("{}")
    assert CommitPolicy.parse('{"items": 3}') == CommitPolicy(items=3)
    assert CommitPolicy().items == 50 and CommitPolicy().seconds == 60


@pytest.mark.parametrize("text", ['{"itemz": 3}', '{"items": 0}', '{"seconds": -1}'])
def test_a_bad_policy_names_the_variable(text):
    with pytest.raises(settings.SettingError, match="ARCHIVE_COMMIT_EVERY"):
        CommitPolicy.parse(text)


def test_a_batch_is_due_at_whichever_limit_comes_first():
    policy = CommitPolicy(items=3, media_h=1.0, seconds=60)
    assert not policy.due(2, 100.0, 10.0)
    assert policy.due(3, 0.0, 0.0)  # items
    assert policy.due(1, 3600.0, 0.0)  # an hour of media
    assert policy.due(1, 0.0, 60.0)  # a minute
