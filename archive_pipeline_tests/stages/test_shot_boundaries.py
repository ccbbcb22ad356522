"""ShotTracker on synthetic frames (model-free, fast): every frame in exactly one shot, one
boundary per transition, none inside fades from or to black or at a flash, a cut at each shot
of a burst."""

import itertools

import numpy as np
import pytest

from archive_pipeline.stages.shot_boundaries import ShotTracker

FPS = 25
rng = np.random.default_rng(7)
A, B, C = (rng.integers(40, 255, (27, 48, 3)).astype(np.float32) for _ in range(3))
BLACK = np.zeros((27, 48, 3), np.float32)


def frame(picture, brightness=1.0):
    return np.clip(picture * brightness, 0, 255).astype(np.uint8)


def run(frames, scores, threshold=0.5, gradual=None, previous=False):
    """Feed the tracker; check every frame is decided once, in order, inside its shot."""
    tracker = ShotTracker(FPS, threshold, previous=previous)
    gradual = np.zeros(len(frames)) if gradual is None else gradual
    decided = []
    for i, (image, score, inside) in enumerate(zip(frames, scores, gradual, strict=True)):
        decided += tracker.step(i, image, score, inside)
    decided += tracker.finish()
    assert [d.index for d in decided] == list(range(len(frames)))
    scenes = tracker.scenes
    assert scenes[0][0] == 0 and scenes[-1][1] == len(frames) - 1
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(scenes))
    for d in decided:
        assert scenes[d.shot][0] <= d.index <= scenes[d.shot][1]
    return [start for start, _ in scenes[1:]], decided


def test_hard_cuts_start_a_shot_after_the_flagged_frame():
    frames = [frame(A)] * 30 + [frame(B)] * 30 + [frame(C)] * 30
    scores = np.zeros(90)
    scores[[29, 59]] = 0.9
    cuts, decided = run(frames, scores)
    assert cuts == [30, 60]
    assert [d.transition for d in decided].count(True) == 2


@pytest.mark.parametrize("seed", range(20))
def test_any_scores_cover_every_frame_once(seed):
    local = np.random.default_rng(seed)
    n = int(local.integers(1, 300))
    pictures = [A, B, C, BLACK]
    frames = [frame(pictures[int(local.integers(0, 4))]) for _ in range(n)]
    run(frames, local.random(n) ** 3)


def test_fade_in_from_black_at_the_start_gives_no_cut():
    ramp = [frame(A, b) for b in np.linspace(0, 1, 38)]
    frames = [frame(BLACK)] * 10 + ramp + [frame(A)] * 30
    scores = np.zeros(len(frames))
    scores[30:33] = [0.4, 0.59, 0.45]  # what TransNetV2 does inside a fade-in
    cuts, _ = run(frames, scores)
    assert cuts == []


def test_fade_out_to_black_and_in_gives_one_boundary_at_the_first_picture():
    out = [frame(A, b) for b in np.linspace(1, 0, 20)]
    into = [frame(B, b) for b in np.linspace(0, 1, 20)]
    frames = [frame(A)] * 30 + out + [frame(BLACK)] * 8 + into + [frame(B)] * 30
    scores = np.zeros(len(frames))
    scores[[33, 52, 66]] = [0.86, 0.7, 0.6]  # flagged inside both fades
    cuts, _ = run(frames, scores)
    first_picture_after_black = next(
        i for i in range(50, len(frames)) if np.percentile(frames[i].mean(axis=2), 99) >= 32
    )
    assert cuts == [first_picture_after_black]


def test_black_gap_longer_than_the_fade_window_gives_one_boundary():
    frames = [frame(A)] * 30 + [frame(BLACK)] * 120 + [frame(B)] * 30
    scores = np.zeros(len(frames))
    scores[[29, 149]] = 0.95  # a hard cut into black and one out of it
    cuts, _ = run(frames, scores)
    assert len(cuts) == 1


def test_black_at_the_end_is_no_shot():
    frames = [frame(A)] * 30 + [frame(BLACK)] * 60
    scores = np.zeros(len(frames))
    scores[29] = 0.95
    assert run(frames, scores)[0] == []


def test_dissolve_gives_one_boundary_in_its_middle():
    blend = [frame(A * (1 - w) + B * w) for w in np.linspace(0, 1, 25)]
    frames = [frame(A)] * 30 + blend + [frame(B)] * 30
    scores = np.zeros(len(frames))
    scores[38:48] = [0.25, 0.3, 0.45, 0.6, 0.7, 0.65, 0.3, 0.55, 0.3, 0.25]
    cuts, _ = run(frames, scores)
    assert cuts == [43]


def test_long_weak_run_is_a_gradual_transition_but_a_short_bump_is_not():
    blend = [frame(A * (1 - w) + B * w) for w in np.linspace(0, 1, 38)]
    frames = [frame(A)] * 30 + blend + [frame(B)] * 30
    scores = np.zeros(len(frames))
    scores[48:53] = [0.22, 0.28, 0.36, 0.31, 0.24]
    scores[80] = 0.35  # one weak frame inside B
    assert run(frames, scores)[0] == [51]


D, E = (rng.integers(40, 255, (27, 48, 3)).astype(np.float32) for _ in range(2))


def test_a_long_dissolve_the_cut_head_misses_is_found_by_the_all_frames_head():
    blend = [frame(A * (1 - w) + B * w) for w in np.linspace(0, 1, 60)]
    frames = [frame(A)] * 30 + blend + [frame(B)] * 30
    scores = np.zeros(len(frames))
    scores[55:60] = 0.15  # the cut head stays low over a 60-frame dissolve ...
    gradual = np.zeros(len(frames))
    gradual[40:85] = 0.6  # ... the all-frames head marks most of it
    gradual[60:63] = 0.35  # with a dip that does not end the run
    cuts, _ = run(frames, scores, gradual=gradual)
    assert len(cuts) == 1 and 30 <= cuts[0] <= 90
    assert run(frames, scores, gradual=gradual, previous=True)[0] == []


def test_a_burst_of_short_shots_gives_a_cut_at_each_even_when_scored_low():
    lengths = [20, 6, 2, 9, 3, 20]
    pictures = [A, B, C, D, E, A]
    frames = [frame(p) for p, n in zip(pictures, lengths, strict=True) for _ in range(n)]
    starts = list(itertools.accumulate(lengths))[:-1]
    scores = np.zeros(len(frames))
    scores[starts[0] - 1] = 0.9
    scores[starts[1] - 1] = 0.12  # the model barely scores the cut into the 2-frame shot
    scores[starts[2] - 1] = 0.7
    scores[starts[2] + 1] = 0.6  # two peaks two frames apart in one run: two cuts
    scores[starts[2]] = 0.25
    scores[starts[3] - 1] = 0.2
    scores[starts[4] - 1] = 0.95
    cuts, _ = run(frames, scores)
    assert cuts == starts
    previous, _ = run(frames, scores, previous=True)
    assert len(previous) < len(starts)


def test_snow_between_two_shots_is_one_boundary_not_a_cut_per_frame():
    noise = [rng.integers(0, 255, (27, 48, 3)).astype(np.uint8) for _ in range(40)]
    frames = [frame(A)] * 30 + noise + [frame(B)] * 30
    scores = np.zeros(len(frames))
    scores[29] = 0.9  # the cut into the snow; every snow frame is unrelated to the last
    assert len(run(frames, scores)[0]) <= 2


def test_a_camera_flash_is_no_cut():
    frames = [frame(A)] * 30 + [frame(A, 3.0), frame(A * 0 + 250)] + [frame(A)] * 30
    scores = np.zeros(len(frames))
    scores[29:32] = [0.3, 0.1, 0.6]  # TransNetV2 on a flash: a peak over the threshold
    assert run(frames, scores)[0] == []
    assert run(frames, scores, previous=True)[0] == [32]


def test_a_fade_in_from_black_marked_by_the_all_frames_head_is_no_cut():
    ramp = [frame(A, b) for b in np.linspace(0, 1, 38)]
    frames = [frame(BLACK)] * 10 + ramp + [frame(A)] * 30
    gradual = np.zeros(len(frames))
    gradual[8:45] = 0.7
    assert run(frames, np.zeros(len(frames)), gradual=gradual)[0] == []


def test_text_sampler_keeps_one_frame_per_text_and_drops_what_a_keyframe_shows():
    from archive_pipeline.stages.keyframes import TextSampler

    box = np.array([[10, 10], [200, 10], [200, 40], [10, 40]], np.float32)
    other_box = box + np.array([0, 100], np.float32)
    shown = {  # probe time -> lines on screen
        0: [],
        1: [(box, "TITLE ONE")],
        2: [(box, "TITLE 0NE")],  # the same title read a little differently
        3: [(box, "TITLE ONE")],
        4: [],
        5: [(other_box, "Lower third")],
        6: [(other_box, "Another name")],  # same place, other text
        7: [],
    }
    image = np.zeros((360, 640, 3), np.uint8)
    sampler = TextSampler(lambda im: shown[int(im[0, 0, 0])], every_s=1.0)
    for t in range(8):
        image = image.copy()
        image[0, 0, 0] = t
        sampler.add(t * 25, float(t), image)
    frames = sampler.finish(keyframe_times=[6.0])
    # the title (1-3 s) once, at its second probe; 'Lower third' alone; 'Another name' is
    # what the keyframe at 6 s shows
    assert [(f.time_s, f.first_s, f.last_s) for f in frames] == [(2.0, 1.0, 3.0), (5.0, 5.0, 5.0)]
    assert sampler.probed == 8


def test_best_reading_of_a_line_across_frames():
    from archive_pipeline.stages.ocr import TextLine, best_readings

    box = (10.0, 10.0, 200.0, 10.0, 200.0, 40.0, 10.0, 40.0)
    low = (10.0, 300.0, 200.0, 300.0, 200.0, 330.0, 10.0, 330.0)
    title = np.full((12, 96), 200, np.int16)
    frames = [
        [TextLine("Big Buck BUNKY", 0.81, box)],
        [TextLine("Big Buck BUNNY", 0.97, box), TextLine("caption", 0.9, low)],
        [TextLine("Big Buck BUNNV", 0.85, box)],
        [],
        [TextLine("Big Buck BUNKY", 0.8, box)],  # after a gap: a new appearance
    ]
    signatures = [[title], [title + 5, title], [title - 5], [], [title]]
    best = best_readings(frames, signatures)
    assert [line.text for line in best[0] + best[1] + best[2]] == [
        "Big Buck BUNNY",
        "Big Buck BUNNY",
        "caption",
        "Big Buck BUNNY",
    ]
    assert best[4][0].text == "Big Buck BUNKY"


def test_changed_text_in_the_same_place_keeps_its_own_reading():
    from archive_pipeline.stages.ocr import TextLine, best_readings

    box = (10.0, 10.0, 200.0, 10.0, 200.0, 40.0, 10.0, 40.0)
    six = np.full((12, 96), 30, np.int16)
    sixteen = six.copy()
    sixteen[:, 60:72] = 230  # one more digit drawn: the pixels changed
    frames = [[TextLine("Frame = 6", 0.94, box)], [TextLine("Frame = 16", 1.0, box)]]
    best = best_readings(frames, [[six], [sixteen]])
    assert [b[0].text for b in best] == ["Frame = 6", "Frame = 16"]
