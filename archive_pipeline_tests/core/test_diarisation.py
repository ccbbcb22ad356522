"""Speaker clustering and linking (model-free): count estimated, hints, voices across blocks."""

import itertools

import numpy as np
import pytest

from archive_pipeline.core import diarisation as dz


def voices(rng, count, per_voice, *, dim=32, spread=0.15):
    centres = rng.normal(size=(count, dim))
    truth = np.repeat(np.arange(count), per_voice)
    return centres[truth] + spread * rng.normal(size=(len(truth), dim)), truth


def same_partition(labels, truth):
    pairs = set(zip(labels.tolist(), truth.tolist(), strict=True))
    return len(pairs) == len(set(labels.tolist())) == len(set(truth.tolist()))


@pytest.mark.slow
def test_spectral_clustering_estimates_the_number_of_voices():
    rng = np.random.default_rng(0)
    for count in (1, 2, 4, 7):
        x, truth = voices(rng, count, 20)
        labels = dz.spectral_labels(x, neighbours=12, merge_similarity=0.875)
        assert same_partition(labels, truth), count


def test_spectral_clustering_honours_a_count_and_a_lower_bound():
    rng = np.random.default_rng(1)
    x, _ = voices(rng, 3, 15)
    assert len(set(dz.spectral_labels(x, neighbours=10, merge_similarity=0.9, num_clusters=2))) == 2
    x, _ = voices(rng, 1, 30)
    labels = dz.spectral_labels(x, neighbours=10, merge_similarity=0.99, min_clusters=2)
    assert len(set(labels)) == 2


def test_similar_clusters_are_merged():
    """Two tight groups of one voice (e.g. one speaker on two microphones) are one voice."""
    rng = np.random.default_rng(2)
    base = rng.normal(size=32)
    a = base + 0.02 * rng.normal(size=(15, 32))
    b = base + 0.3 * rng.normal(size=32) + 0.02 * rng.normal(size=(15, 32))
    labels = dz.spectral_labels(np.vstack([a, b]), neighbours=8, merge_similarity=0.8)
    assert set(labels) == {0}


def test_linker_keeps_voices_across_blocks_and_adds_new_ones():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(3, 16))
    linker = dz.SpeakerLinker(0.875)
    assert linker.link(centres[[0, 1]]) == [0, 1]
    noisy = centres + 0.05 * rng.normal(size=centres.shape)
    assert linker.link(noisy[[1, 2]]) == [1, 2]  # voice 2 is new
    assert linker.link(noisy[[2, 0]]) == [2, 0]
    # no centroid (too little speech in the block): the nearest voice by its turns' mean
    assert linker.link(np.full((1, 16), np.nan), fallback=noisy[[1]]) == [1]
    assert linker.link(np.full((1, 16), np.nan)) == [3]  # nothing to go by: a voice of its own
    other = rng.normal(size=(1, 16))
    assert linker.link(np.full((1, 16), np.nan), fallback=other) == [
        int(np.argmax(dz.unit(np.stack(linker.sums)) @ dz.unit(other[0])))
    ]  # unclustered: the nearest
    # a speaker counted in an overlap (zero row) unlike every voice: a voice of its own
    assert linker.link(np.zeros((1, 16)), fallback=other) == [4]
    assert len(linker.sums) == 5
    # an extra speaker pyannote counted in an overlap (zero centroid) joins this block's voice
    first = dz.SpeakerLinker(0.875)
    padded = np.vstack([centres[0], np.zeros(16)])
    assert first.link(padded, fallback=np.vstack([centres[0], noisy[0]])) == [0, 0]


def test_speaker_windows_tile_each_region_without_overlap():
    windows, cores = dz.sliding_windows([(0.0, 5.0), (6.0, 6.8)])
    assert all(abs((b - a) - dz.WINDOW_S) < 1e-9 for a, b in windows[:-1])
    assert windows[-1] == (6.0, 6.8) == cores[-1]  # shorter than a window: one window
    first = [c for c in cores if c[1] <= 5.0]
    assert first[0][0] == 0.0 and first[-1][1] == 5.0
    assert all(a[1] == b[0] for a, b in itertools.pairwise(first))  # contiguous, no overlap
    assert windows[len(first) - 1][1] == 5.0  # the last window ends with the region


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_few_windows_of_a_short_recording_still_give_every_voice(count):
    """A short recording (three 2-5 s turns = 3-6 windows per voice) is not one speaker for
    having few embeddings."""
    rng = np.random.default_rng(count)
    x, truth = voices(rng, count, 4)
    labels = dz.window_labels(x, merge_similarity=0.875)
    assert same_partition(labels, truth)


def test_window_clustering_over_its_bound_assigns_the_rest_to_the_nearest_voice():
    rng = np.random.default_rng(4)
    x, truth = voices(rng, 3, 200)
    labels = dz.window_labels(x, merge_similarity=0.875, max_direct=90)
    assert same_partition(labels, truth)


def test_the_second_voice_of_an_overlap_gets_a_turn():
    turns = [dz.Turn(0.0, 4.0, "S0"), dz.Turn(4.0, 8.0, "S1")]
    # the segmentation model hears both from 3 to 5 s
    segmentation = [(0.0, 5.0, "a"), (3.0, 8.0, "b")]
    extra = dz.overlap_turns(turns, segmentation)
    assert sorted(extra, key=lambda t: t.start) == [
        dz.Turn(3.0, 4.0, "S1"),
        dz.Turn(4.0, 5.0, "S0"),
    ]
    assert dz.overlap_turns(turns, [(0.0, 8.0, "a")]) == []  # one voice at a time: nothing


def thai_segment():
    """Whisper-like Thai word tokens: pieces of characters, some starting with a combining
    mark, no leading spaces except between phrases."""
    tokens = ["ส", "วั", "ส", "ดี", "ค", "รั", "บ", " วัน", "นี้", "เรา", "ม", "า", "คุ", "ย"]
    words = [
        {"start": i * 0.25, "end": (i + 1) * 0.25, "word": w, "probability": 0.9}
        for i, w in enumerate(tokens)
    ]
    return {"start_s": 0.0, "end_s": 3.5, "text": "".join(tokens), "words": words}


def test_a_segment_is_cut_between_whole_words_never_inside_one():
    segment = thai_segment()
    # the speaker changes at 1.1 s, in the middle of the first phrase
    turns = [dz.Turn(0.0, 1.1, "A"), dz.Turn(1.1, 4.0, "B")]
    pieces = dz.split_segment(segment, turns)
    assert [p["text"] for p in pieces] == ["สวัสดีครับ", "วันนี้เรามาคุย"]
    assert [p["speaker"] for p in pieces] == ["A", "B"]
    # cut at every token (the previous behaviour), a change at 0.3 s leaves one character
    turns = [dz.Turn(0.0, 0.3, "A"), dz.Turn(0.3, 4.0, "B")]
    every_token = dz.split_segment(segment, turns, whole_words=False, min_piece_s=0.0)
    assert every_token[0]["text"] == "ส"
    assert [p["text"] for p in dz.split_segment(segment, turns)] == [segment["text"]]


def test_a_sliver_of_another_speaker_joins_its_neighbour():
    words = [
        {"start": 0.0, "end": 1.0, "word": " We", "probability": 0.9},
        {"start": 1.0, "end": 2.0, "word": " walked", "probability": 0.9},
        {"start": 2.0, "end": 2.3, "word": " across", "probability": 0.9},  # 0.3 s of B
        {"start": 2.3, "end": 3.5, "word": " the", "probability": 0.9},
        {"start": 3.5, "end": 5.0, "word": " ice.", "probability": 0.9},
    ]
    segment = {"start_s": 0.0, "end_s": 5.0, "text": "We walked across the ice.", "words": words}
    turns = [dz.Turn(0.0, 2.0, "A"), dz.Turn(2.0, 2.3, "B"), dz.Turn(2.3, 5.0, "A")]
    pieces = dz.split_segment(segment, turns)
    assert [(p["speaker"], p["text"]) for p in pieces] == [("A", "We walked across the ice.")]
    turns = [dz.Turn(0.0, 2.0, "A"), dz.Turn(2.0, 5.0, "B")]  # a real change stays a cut
    assert [p["speaker"] for p in dz.split_segment(segment, turns)] == ["A", "B"]
