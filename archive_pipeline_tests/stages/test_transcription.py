"""Transcription helpers without a model: hallucination flags, temperatures."""

import pytest

from archive_pipeline.stages.transcription import compression_ratio, suspect_reason, temperatures


def segment(text="We walked across the ice.", logprob=-0.3, no_speech=0.05, words=None):
    words = words or [{"word": f" {w}", "probability": 0.9} for w in text.split()]
    return {
        "text": text,
        "avg_logprob": logprob,
        "no_speech_prob": no_speech,
        "compression_ratio": compression_ratio(text),
        "words": words,
    }


def test_plain_speech_is_not_suspect():
    assert suspect_reason(segment()) is None
    assert suspect_reason(segment("Yes.", words=[{"word": " Yes.", "probability": 0.95}])) is None


@pytest.mark.parametrize(
    ("made", "reason"),
    [
        (segment(logprob=-1.4, no_speech=0.8), "no_speech"),
        (segment(" ".join(["yeah"] * 60)), "repetition"),
        (segment(logprob=-1.3), "low_logprob"),
        (segment("왜?", words=[{"word": "왜?", "probability": 0.2}]), "unsure_short"),
    ],
)
def test_signals_of_a_hallucination_flag_the_segment(made, reason):
    assert suspect_reason(made) == reason


def test_temperatures_are_read_and_checked():
    assert temperatures("0") == [0.0]
    assert temperatures("0, 0.2,0.4") == [0.0, 0.2, 0.4]
    with pytest.raises(ValueError, match="ARCHIVE_WHISPER_OPTIONS temperatures"):
        temperatures("hot")
    with pytest.raises(ValueError, match="ARCHIVE_WHISPER_OPTIONS temperatures"):
        temperatures("2")
