"""The query syntax: parsing, the words each language column gets, conditions on rows and
word-level highlights."""

import pytest

from archive_pipeline.search.syntax import (
    Term,
    column_words,
    fts_query,
    highlights,
    parse,
    satisfies,
)


def test_parse_reads_phrases_prefixes_exclusions_and_or():
    parsed = parse('"Tram Line" -bus tra* OR "river froze" Berlin')
    assert [c.terms for c in parsed.clauses] == [
        (Term("tram line", phrase=True),),
        (Term("tra", prefix=True), Term("river froze", phrase=True)),
        (Term("berlin"),),
    ]
    assert parsed.excluded == (Term("bus", exclude=True),)
    assert [c.required for c in parsed.clauses] == [True, True, False]
    assert parsed.plain == "Tram Line tra river froze Berlin"  # as written: what is embedded
    assert parsed.has_operators and not parse("tram line").has_operators


@pytest.mark.parametrize(
    ("query", "terms", "excluded"),
    [
        ("*", [], []),
        ("-", [], []),
        ("-tram", [], ["tram"]),
        ('"unclosed phrase', ["unclosed phrase"], []),
        ('""', [], []),
        ("U-Bahn", ["u bahn"], []),  # words joined by punctuation: one term, not a phrase
        ("t*", ["t"], []),  # one letter is no prefix
        ("or OR", ["or"], []),  # lower-case `or` is a word; a trailing OR joins nothing
        ("OR tram", ["tram"], []),
        ("Fähre", ["fähre"], []),
    ],
)
def test_parse_is_lenient(query, terms, excluded):
    parsed = parse(query)
    assert not any(t.phrase for t in parsed.terms if '"' not in query)
    assert [t.text for t in parsed.terms] == terms
    assert [t.text for t in parsed.excluded] == excluded


def test_a_stop_word_of_the_query_language_is_left_out_of_the_other_column():
    english, german = parse("the wall"), parse("die Mauer")
    assert english.language() == "English" and german.language() == "German"
    assert parse("the war").language() is None  # one stop word of each: not told
    the, die = english.terms[0], german.terms[0]
    assert column_words(the, "German", "English") == []
    assert column_words(the, "English", "English") == ["the"]  # its own index drops it
    assert column_words(die, "English", "German") == []
    assert column_words(die, "English", None) == ["die"]  # "die" is English too


def test_fts_query_builds_boolean_queries_per_column():
    from lancedb.query import BooleanQuery, MatchQuery, Occur, PhraseQuery

    columns = {"text_en": "English", "text_de": "German"}
    query = fts_query(parse('"tram line" bus -car'), columns, expand=lambda p: [])
    assert isinstance(query, BooleanQuery)
    occurs = [occur for occur, _ in query.queries]
    assert occurs.count(Occur.MUST) == 1 and occurs.count(Occur.MUST_NOT) == 2
    must = next(q for occur, q in query.queries if occur == Occur.MUST)
    assert all(isinstance(q, PhraseQuery) for _, q in must.queries)
    assert {q.column for occur, q in query.queries if occur == Occur.SHOULD} == set(columns)
    # a prefix no word of the archive has, alone: nothing to search
    assert fts_query(parse("zzq*"), columns, expand=lambda p: []) is None
    expanded = fts_query(parse("tra*"), columns, expand=lambda p: ["tram", "trade"])
    assert [q.query for _, q in expanded.queries] == ["tram trade", "tram trade"]
    assert isinstance(expanded.queries[0][1], MatchQuery)


def test_satisfies_checks_phrases_in_order_and_exclusions_by_stem():
    text = "The council approved the new tram lines today."
    assert satisfies(text, parse('"tram lines"'))
    assert satisfies(text, parse('"tram line"'))  # stems, as the index
    assert not satisfies(text, parse('"lines tram"'))
    assert not satisfies(text, parse("tram -approve"))  # approved -> approv
    assert satisfies(text, parse("tram -bus"))
    assert satisfies(text, parse('"river froze" OR tram'))  # a plain term of the clause


def test_highlights_mark_whole_words_never_parts_or_stop_words():
    text = "Americans at the border: the American can cross. Bordering towns."
    spans = highlights(text, parse("the american border"))
    # whole words with the query word's stem (as the index matched them), never a part of one
    assert [text[a:b] for a, b in spans] == ["Americans", "border", "American", "Bordering"]
    assert highlights("Americana", parse("american")) == []
    assert highlights("Tramway trams", parse("tram*")) == [(0, 7), (8, 13)]
    assert highlights("Die Mauer fiel", parse("die Mauern")) == [(4, 9)]


def test_stemming_is_safe_from_several_threads():
    """The service answers from a thread pool; Snowball stemmer objects keep the word they
    work on, so a shared one gives wrong stems and IndexErrors under load (seen as a 500)."""
    import threading

    from archive_pipeline.search.syntax import stems

    words = [f"{stem}{ending}" for stem in ("nation", "border", "happi", "run") for ending in
             ("alization", "ings", "ly", "ners", "s")]  # fmt: skip
    expected = {w: stems(w) for w in words}
    stems.cache_clear()
    problems = []

    def work(seed: int) -> None:
        for i in range(3000):
            word = words[(seed + i) % len(words)]
            try:
                if stems.__wrapped__(word) != expected[word]:
                    problems.append(word)
            except Exception as exc:
                problems.append(repr(exc))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert problems == []
