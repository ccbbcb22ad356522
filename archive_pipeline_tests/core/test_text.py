"""Page and screen text: search form of historic print, language, passages."""

from archive_pipeline.core.text import (
    detect_language,
    join_lines,
    normalise_print,
    passages,
)


def test_the_search_form_of_historic_print():
    assert normalise_print("Was iſt Aufklaͤrung?") == "Was ist Aufklärung?"
    assert normalise_print("ſich ſelbſt verſchuldeten") == "sich selbst verschuldeten"
    assert normalise_print("Oﬃcier ﬅets Schiﬀ") == "Officier stets Schiff"
    assert normalise_print("Men⸗") == "Men-"
    assert normalise_print("Größe, Fähre, Straße") == "Größe, Fähre, Straße"  # kept


def test_lines_join_into_running_text_and_hyphenated_words_join_again():
    assert join_lines(["aus ſeiner Unmün-", "digkeit. Unmündigkeit"]) == (
        "aus ſeiner Unmündigkeit. Unmündigkeit"
    )
    assert join_lines(["Berlin-", "Spandau", "  ", "fährt"]) == "Berlin- Spandau fährt"


def test_language_of_text_and_none_for_too_little():
    assert detect_language("Als der Winter vorüber war, kamen die Schiffer")[0] == "de"
    assert detect_language("When the winter was over the boatmen returned")[0] == "en"
    assert detect_language("Frame = 25") is None  # too few letters to tell
    assert detect_language("REEL 42") is None


def _box(x0, y0, x1, y1):
    return (x0, y0, x1, y0, x1, y1, x0, y1)


def _page(rows):
    """(texts, boxes) of lines 30 px high at the given (top, left, text)."""
    return [t for _, _, t in rows], [_box(x, y, 900, y + 30) for y, x, t in rows]


def test_passages_split_at_blank_lines_and_indents_and_keep_headings_with_their_text():
    body = "Ein Satz mit einigen Wörtern darin, der weitergeht."
    texts, boxes = _page(
        [
            (100, 100, "ÜBERSCHRIFT"),  # a heading: joins the paragraph after it
            (140, 100, body),
            (180, 100, body),
            (260, 100, body),  # after a blank line
            (300, 100, body),
            (340, 160, body),  # an indented first line after a sentence's end
            (380, 100, body),
        ]
    )
    found = passages(texts, boxes)
    assert [p.lines for p in found] == [(0, 1, 2), (3, 4), (5, 6)]
    assert found[0].text.startswith("ÜBERSCHRIFT Ein Satz") and found[0].region == (
        100,
        100,
        900,
        210,
    )


def test_a_long_paragraph_is_cut_after_a_sentence():
    line = "eins zwei drei vier fünf sechs sieben acht neun zehn."  # 10 words, a sentence end
    texts, boxes = _page([(100 + 40 * i, 100, line) for i in range(20)])
    found = passages(texts, boxes, max_words=40)
    assert [len(p.lines) for p in found] == [4, 4, 4, 4, 4]
    assert passages([], []) == []
