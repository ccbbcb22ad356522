"""Speaker clustering and linking (model-free): count estimated, hints, voices across blocks."""

import numpy as np
import pytest

from archive_pipeline.core import diarization as dz


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
