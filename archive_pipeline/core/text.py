"""Text read from pages and screens: the search form of historic print, the language a text is
in, and passages of a page (lines grouped into paragraphs with their region)."""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

# historic letters that NFKC leaves alone: r rotunda, the Fraktur (double oblique) hyphen
_HISTORIC = str.maketrans({"ꝛ": "r", "Ꝛ": "R", "\u2e17": "-"})
# e written above a vowel (1784: "Aufklaͤrung") is the umlaut's older form
_E_ABOVE = re.compile("([AOUaou])\u0364")


def normalise_print(text: str) -> str:
    """The search form of a reading: long s as s, ligatures (ﬀ, ﬅ...) as their letters, e
    above a vowel as its umlaut, the Fraktur hyphen as a hyphen (Unicode NFKC, then NFC)."""
    text = _E_ABOVE.sub(lambda m: m.group(1) + "\u0308", unicodedata.normalize("NFD", text))
    return unicodedata.normalize("NFC", unicodedata.normalize("NFKC", text).translate(_HISTORIC))


def join_lines(lines: Sequence[str]) -> str:
    """Lines of a passage as running text: a word hyphenated at a line's end is joined again
    ("Unmün-" + "digkeit" -> "Unmündigkeit"), other lines are joined by a space."""
    out = ""
    for line in (line.strip() for line in lines):
        if not line:
            continue
        if re.search(r"\w-$", out) and line[:1].islower():
            out = out[:-1] + line
        else:
            out = f"{out} {line}" if out else line
    return out


UNDETERMINED = "und"  # ISO 639's code for a language that cannot be told
MIN_LETTERS = 12  # a shorter text's language is not guessed
SURE_LANGUAGE = 0.5  # the detected language must be more likely than all the others together


@functools.cache
def _identifier():
    import py3langid.langid as langid

    return langid.LanguageIdentifier.from_modelpath(
        langid.MODEL_DIR / langid.MODEL_FILE, norm_probs=True
    )


def detect_language(text: str) -> tuple[str, float] | None:
    """(ISO 639-1 code, probability) of the text's language (py3langid: 97 languages, its model
    inside the wheel), or None for a text too short to tell (under MIN_LETTERS letters) or one
    no language is more likely than not for."""
    if sum(c.isalpha() for c in text) < MIN_LETTERS:
        return None
    language, probability = _identifier().classify(text)
    return (language, float(probability)) if probability >= SURE_LANGUAGE else None


@dataclass(frozen=True)
class Passage:
    """A block of consecutive lines of a page: their indexes, text and bounding region."""

    lines: tuple[int, ...]
    text: str
    region: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels


PARAGRAPH_PITCH = 1.5  # a line this many typical line pitches below the last starts a paragraph
PARAGRAPH_INDENT = 1.0  # ... as does one indented this many line heights after a sentence's end
MIN_PASSAGE_WORDS = 8  # a shorter block (a heading) joins the passage after it
PASSAGE_WORDS = 80  # a paragraph longer than this is cut at a sentence end (or a line end)
SENTENCE_END = (".", "!", "?", ":", '"', "»", "«", "“", "”")


def passages(
    texts: Sequence[str], boxes: Sequence[Sequence[float]], *, max_words: int = PASSAGE_WORDS
) -> list[Passage]:
    """Lines of one page (in reading order, polygons x1,y1,...) grouped into passages:
    paragraphs (a blank line: the distance to the line above over PARAGRAPH_PITCH times the
    page's median; or a first-line indent after a sentence's end), long paragraphs cut after
    the line that ends a sentence once `max_words` are reached (else after the line that passes
    twice that), so each passage is a few sentences a reader can be pointed to."""
    if not texts:
        return []
    tops = [min(box[1::2]) for box in boxes]
    lefts = [min(box[0::2]) for box in boxes]
    heights = sorted(max(box[1::2]) - min(box[1::2]) for box in boxes)
    height = max(heights[len(heights) // 2], 1.0)
    steps = sorted(b - a for a, b in itertools.pairwise(tops) if b - a > height / 2)
    pitch = steps[len(steps) // 2] if steps else height
    margin = sorted(lefts)[len(lefts) // 4]  # the text's left edge (most lines start there)
    groups: list[list[int]] = [[0]]
    words = len(texts[0].split())
    for i in range(1, len(texts)):
        sentence_end = texts[i - 1].rstrip().endswith(SENTENCE_END)
        blank_line = tops[i] - tops[i - 1] > PARAGRAPH_PITCH * pitch
        indented = lefts[i] - margin > PARAGRAPH_INDENT * height and lefts[i - 1] - margin < height
        if (
            blank_line
            or (indented and sentence_end)
            or (words >= max_words and sentence_end)
            or words >= 2 * max_words
        ):
            groups.append([i])
            words = 0
        else:
            groups[-1].append(i)
        words += len(texts[i].split())
    # a heading or a stray line (under MIN_PASSAGE_WORDS) belongs with the passage after it
    merged: list[list[int]] = []
    for group in groups:
        if merged and sum(len(texts[i].split()) for i in merged[-1]) < MIN_PASSAGE_WORDS:
            merged[-1] += group
        else:
            merged.append(group)
    if len(merged) > 1 and sum(len(texts[i].split()) for i in merged[-1]) < MIN_PASSAGE_WORDS:
        merged[-2] += merged.pop()
    out = []
    for group in merged:
        xs = [x for i in group for x in boxes[i][0::2]]
        ys = [y for i in group for y in boxes[i][1::2]]
        text = join_lines([texts[i] for i in group])
        if text:
            out.append(Passage(tuple(group), text, (min(xs), min(ys), max(xs), max(ys))))
    return out
