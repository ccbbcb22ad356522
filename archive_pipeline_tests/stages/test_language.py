"""Language per speech span (stages/language.py): grouping, choosing and spans (no model)."""

from archive_pipeline.stages.language import SAMPLE_RATE, Piece, assign, cut, spans

S = SAMPLE_RATE


def piece(start_s, end_s, **probs):
    return Piece(int(start_s * S), int(end_s * S), dict(probs))


def test_regions_longer_than_one_whisper_window_are_cut():
    pieces = cut([(0, 10 * S), (11 * S, 25 * S), (26 * S, 40 * S), (41 * S, 110 * S)])
    spans_s = [(p.start // S, p.end // S) for p in pieces]
    assert spans_s == [(0, 10), (11, 25), (26, 40), (41, 71), (71, 101), (101, 110)]


def test_a_confident_language_wins_and_unclear_pieces_choose_among_the_items_languages():
    pieces = [
        piece(0, 5, en=0.95, de=0.03),
        piece(6, 10, de=0.90, en=0.05),
        # unclear: Whisper's top is Thai, but the item speaks German and English
        piece(11, 14, th=0.46, de=0.30, en=0.10),
        piece(15, 15.3),  # too short to score: its neighbour's
    ]
    languages = assign(pieces, known=set(), hint=None)
    assert languages == {"en", "de"}
    assert [p.language for p in pieces] == ["en", "de", "de", "de"]
    assert pieces[2].probability == 0.30 and pieces[3].probability is None


def test_the_catalogue_language_is_a_hint_not_a_lock():
    sure = [piece(0, 5, en=0.97), piece(6, 8, de=0.5, en=0.4)]
    assign(sure, known=set(), hint="de")
    assert [p.language for p in sure] == ["en", "de"]  # confident English is kept
    # a short confident piece never brings in a new language of its own
    short = [piece(0, 5, de=0.9), piece(6, 7, nl=0.85, de=0.1)]
    assert assign(short, known=set(), hint=None) == {"de"}
    assert short[1].language == "de"


def test_languages_found_in_earlier_chunks_stay_candidates():
    later = [piece(0, 4, th=0.4, en=0.35, de=0.2)]
    assign(later, known={"de"}, hint=None)
    assert later[0].language == "de"


def test_spans_merge_one_language_and_cut_half_way_through_the_pause():
    pieces = [piece(1, 5, en=0.9), piece(6, 9, en=0.9), piece(10, 14, de=0.9)]
    assign(pieces, known=set(), hint=None)
    out = spans(pieces, 20 * S)
    assert [(s.start / S, s.end / S, s.language) for s in out] == [
        (0.0, 9.5, "en"),
        (9.5, 20.0, "de"),
    ]
    assert abs(out[0].probability - 0.9) < 1e-9
    assert spans([], 20 * S) == []


def scored_span(language, probability, speech_s, **probs):
    from archive_pipeline.stages.language import Span

    return Span(0, 1, language, probability, detected=language, speech_s=speech_s, probs=probs)


def test_a_switch_needs_confidence_on_enough_speech_else_the_dominant_language_is_kept():
    from archive_pipeline.stages.language import with_prior

    decided = with_prior(
        [
            scored_span("en", 0.95, 6.0, en=0.95),
            scored_span("cy", 0.45, 4.0, cy=0.45, en=0.3),  # unsure: kept English
            scored_span("ko", 0.92, 1.2, ko=0.92, en=0.05),  # sure but short: kept English
            scored_span("de", 0.97, 5.0, de=0.97, en=0.02),  # sure on enough speech: checked
        ],
        "en",
    )
    assert [(s.language, s.decision) for s in decided] == [
        ("en", "dominant"),
        ("en", "kept"),
        ("en", "kept"),
        ("de", "candidate"),
    ]
    assert decided[1].detected == "cy" and decided[1].probability == 0.3


class Decoded:
    def __init__(self, start, end, avg_logprob, compression_ratio=1.2):
        self.start, self.end = start, end
        self.avg_logprob, self.compression_ratio = avg_logprob, compression_ratio


def test_a_candidate_switches_only_when_its_own_language_decodes_clearly_better():
    from archive_pipeline.stages.language import SWITCH_MARGIN, dominant_language, switch_wins

    english = [Decoded(0, 3, -0.6)]
    assert switch_wins([Decoded(0, 3, -0.2)], english)  # German spoken: German reads better
    assert not switch_wins([Decoded(0, 3, -1.3)], english)  # invented German text
    assert not switch_wins([Decoded(0, 3, -0.6 - SWITCH_MARGIN - 0.05)], english)  # worse
    assert not switch_wins([Decoded(0, 3, -0.1, compression_ratio=3.1)], english)  # a loop
    one_loop = [Decoded(0, 4, -0.2), Decoded(4, 6, -0.4, compression_ratio=9.0)]
    assert switch_wins(one_loop, english)  # one looping segment of three: flagged on its own
    assert not switch_wins([], english)
    assert dominant_language({"en": 10.0, "de": 6.0}, None) == "en"
    assert dominant_language({"en": 10.0, "de": 6.0}, "de") == "de"  # the catalogue's prior
