"""The query syntax of the search (README, "Query syntax"): words, `"phrases"`, `prefix*`,
`-exclude`, `OR`; the query as each language's full-text column should see it; word-level
highlights.

- Words are ranked by BM25: a document with more of them, and rarer ones, ranks higher.
- `"a phrase"` must occur as written (stop words and word endings aside: the index stems).
- `word*` matches words beginning so (the table's own words, most frequent first).
- `-word` or `-"a phrase"` leaves out documents holding it.
- `a OR b` joins terms: one of them must match where a phrase is among them (plain words are
  already either-or); `OR` is upper case, `or` is a word.
- A stop word of one language is not matched in the other language's column when the query is
  in the first language (told by which language's stop words it holds): "the wall" does not
  match German text by "the", "die Mauer" does not match English text by "die".

Dagster-free and model-free: the searcher (search/query.py) turns a `ParsedQuery` into a LanceDB
full-text query with `fts_query`.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

# Snowball's stop word lists (the ones the full-text indexes drop), by index language
_SNOWBALL_ENGLISH = """
    i me my myself we our ours ourselves you your yours yourself yourselves he him his
    himself she her hers herself it its itself they them their theirs themselves what which
    who whom this that these those am is are was were be been being have has had having do
    does did doing would should could ought a an the and but if or because as until while of
    at by for with about against between into through during before after above below to
    from up down in out on off over under again further then once here there when where why
    how all any both each few more most other some such no nor not only own same so than too
    very s t can will just don
"""
_SNOWBALL_GERMAN = """
    aber alle allem allen aller alles als also am an ander andere anderem anderen anderer
    anderes anderm andern anderr anders auch auf aus bei bin bis bist da damit dann der den
    des dem die das dass daß derselbe derselben denselben desselben demselben dieselbe
    dieselben dasselbe dazu dein deine deinem deinen deiner deines denn derer dessen dich
    dir du dies diese diesem diesen dieser dieses doch dort durch ein eine einem einen einer
    eines einig einige einigem einigen einiger einiges einmal er ihn ihm es etwas euer eure
    eurem euren eurer eures für gegen gewesen hab habe haben hat hatte hatten hier hin
    hinter ich mich mir ihr ihre ihrem ihren ihrer ihres euch im in indem ins ist jede jedem
    jeden jeder jedes jene jenem jenen jener jenes jetzt kann kein keine keinem keinen
    keiner keines können könnte machen man manche manchem manchen mancher manches mein meine
    meinem meinen meiner meines mit muss musste nach nicht nichts noch nun nur ob oder ohne
    sehr sein seine seinem seinen seiner seines selbst sich sie ihnen sind so solche solchem
    solchen solcher solches soll sollte sondern sonst über um und uns unsere unserem unseren
    unser unseres unter viel vom von vor während war waren warst was weg weil weiter welche
    welchem welchen welcher welches wenn werde werden wie wieder will wir wird wirst wo
    wollen wollte würde würden zu zum zur zwar zwischen
"""
STOP_WORDS = {
    "English": frozenset(_SNOWBALL_ENGLISH.split()),
    "German": frozenset(_SNOWBALL_GERMAN.split()),
}
ALL_STOP_WORDS = frozenset().union(*STOP_WORDS.values())
MAX_TERMS = 32  # terms of one query (more is not a query but a pasted text: the rest is ignored)
PREFIX_MIN = 2  # letters before a `*`
PREFIX_EXPANSIONS = 20  # words a prefix stands for (the most frequent)
_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')


def words(text: str) -> list[str]:
    """Lower-case words: runs of letters and digits (accents kept, NFC)."""
    return re.findall(r"[^\W_]+", unicodedata.normalize("NFC", text).casefold())


@dataclass(frozen=True)
class Term:
    """A word, a phrase (`"…"`) or a prefix (`word*`); `exclude`: preceded by `-`."""

    text: str  # its words joined by spaces (a prefix: the letters before `*`)
    phrase: bool = False
    prefix: bool = False
    exclude: bool = False

    @property
    def words(self) -> list[str]:
        """The term's words."""
        return self.text.split()


@dataclass(frozen=True)
class Clause:
    """Terms joined by OR (one term when there was no OR)."""

    terms: tuple[Term, ...]

    @property
    def required(self) -> bool:
        """Whether one of its terms must match: a clause with a phrase."""
        return any(term.phrase for term in self.terms)


@dataclass(frozen=True)
class ParsedQuery:
    """A query as the syntax reads it."""

    clauses: tuple[Clause, ...]  # what to find
    excluded: tuple[Term, ...]  # what a hit must not hold
    plain: str = ""  # the terms to find as written, without the syntax (embedded, titles)

    @property
    def terms(self) -> list[Term]:
        """The terms to find, in query order."""
        return [term for clause in self.clauses for term in clause.terms]

    @property
    def has_operators(self) -> bool:
        """Whether the query uses the syntax (phrases, prefixes, exclusions, OR)."""
        return (
            bool(self.excluded)
            or any(term.phrase or term.prefix for term in self.terms)
            or any(len(clause.terms) > 1 for clause in self.clauses)
        )

    def language(self) -> str | None:
        """The index language the query is in, told by its stop words: the language with
        strictly more of them; None when neither has more."""
        found = {
            name: sum(word in stops for term in self.terms for word in term.words)
            for name, stops in STOP_WORDS.items()
        }
        ranked = sorted(found.items(), key=lambda kv: -kv[1])
        if ranked[0][1] > (ranked[1][1] if len(ranked) > 1 else 0):
            return ranked[0][0]
        return None


def parse(query: str) -> ParsedQuery:
    """Read the query syntax. Unbalanced quotes close at the end; a `*` or `-` alone, and
    terms without a letter or digit, are ignored (they match nothing)."""
    items: list[Term | str] = []
    written: list[tuple[Term, str]] = []  # each term and how it was written
    for match in _TOKEN.finditer(query):
        minus, quoted, bare = match.groups()
        if bare is not None:
            if bare == "OR":
                items.append("OR")
                continue
            exclude = bare.startswith("-") and len(bare) > 1
            body = bare[1:] if exclude else bare
            prefix = body.endswith("*")
            found = words(body)
            if not found:
                continue
            if prefix and len(found) == 1 and len(found[0]) >= PREFIX_MIN:
                items.append(Term(found[0], prefix=True, exclude=exclude))
            elif len(found) > 1:  # U-Bahn, go-ahead: its words (quote it to need the order)
                items.append(Term(" ".join(found), exclude=exclude))
            else:
                items.append(Term(found[0], exclude=exclude))
            written.append((items[-1], body.rstrip("*")))
        else:
            found = words(quoted or "")
            if found:
                phrase = len(found) > 1
                items.append(Term(" ".join(found), phrase=phrase, exclude=bool(minus)))
                written.append((items[-1], quoted.strip()))
    clauses: list[list[Term]] = []
    excluded: list[Term] = []
    joining = False
    for item in items:
        if item == "OR":
            joining = bool(clauses)
            continue
        assert isinstance(item, Term)
        if item.exclude:
            excluded.append(item)
        elif joining:
            clauses[-1].append(item)
        else:
            clauses.append([item])
        joining = False
    kept = tuple(Clause(tuple(terms)) for terms in clauses[:MAX_TERMS])
    finding = {id(term) for clause in kept for term in clause.terms}
    return ParsedQuery(
        clauses=kept,
        excluded=tuple(excluded[:MAX_TERMS]),
        plain=" ".join(text for term, text in written if id(term) in finding),
    )


def column_words(term: Term, column_language: str, query_language: str | None) -> list[str]:
    """The term's words for one language's column: a stop word of the query's language is left
    out of another language's column (there it is a content word that the query did not mean);
    a phrase keeps its words (its index drops its own stop words)."""
    if term.phrase or query_language is None or query_language == column_language:
        return term.words
    foreign = STOP_WORDS[query_language] - STOP_WORDS[column_language]
    return [word for word in term.words if word not in foreign]


def plain_words(parsed: ParsedQuery) -> str | None:
    """The words of a query without syntax as one text for every language column at once: the
    stop words of the query's language dropped (in its own column the index drops them anyway;
    in the other they are content words the query did not mean). None when the query uses the
    syntax (it needs `fts_query`)."""
    if parsed.has_operators:
        return None
    found = [word for term in parsed.terms for word in term.words]
    language = parsed.language()
    kept = [w for w in found if not language or w not in STOP_WORDS[language]]
    return " ".join(kept or found)


def fts_query(
    parsed: ParsedQuery,
    columns: dict[str, str],
    *,
    expand: Callable[[str], Sequence[str]],
    phrases: bool = True,
):
    """The LanceDB full-text query: `columns` {column: index language}; `expand` turns a
    prefix into the words it stands for; `phrases` False where the index has no positions
    (a phrase then needs all its words: the searcher checks the order afterwards). None when
    nothing can be matched (stop words only, or a prefix no word has)."""
    from lancedb.query import BooleanQuery, MatchQuery, Occur, PhraseQuery

    language = parsed.language()

    def term_queries(term: Term) -> list:
        out = []
        for column, column_language in columns.items():
            if term.prefix:
                expanded = list(expand(term.text))
                if expanded:
                    out.append(MatchQuery(" ".join(expanded), column))
            elif term.phrase and phrases:
                out.append(PhraseQuery(term.text, column))
            elif term.phrase:
                out.append(BooleanQuery([(Occur.MUST, MatchQuery(w, column)) for w in term.words]))
            else:
                kept = column_words(term, column_language, language)
                if kept:
                    out.append(MatchQuery(" ".join(kept), column))
        return out

    parts: list[tuple] = []
    for clause in parsed.clauses:
        queries = [q for term in clause.terms for q in term_queries(term)]
        if not queries:
            if clause.required:  # a phrase that nothing can hold
                return None
            continue
        if clause.required:
            parts.append((Occur.MUST, BooleanQuery([(Occur.SHOULD, q) for q in queries])))
        else:
            parts.extend((Occur.SHOULD, q) for q in queries)
    if not parts:
        return None
    for term in parsed.excluded:
        parts.extend((Occur.MUST_NOT, q) for q in term_queries(term))
    return BooleanQuery(parts)


_LOCAL = threading.local()


def _stemmer(language: str):
    """This thread's Snowball stemmer of a language (a stemmer object keeps the word it works
    on: threads of the service must not share one)."""
    stemmers = getattr(_LOCAL, "stemmers", None)
    if stemmers is None:
        stemmers = _LOCAL.stemmers = {}
    if language not in stemmers:
        import snowballstemmer

        stemmers[language] = snowballstemmer.stemmer(language.lower())
    return stemmers[language]


@lru_cache(maxsize=65536)
def stems(word: str) -> frozenset[str]:
    """The word's stems in each index language (the index stems with Snowball too)."""
    return frozenset(_stemmer(language).stemWord(word) for language in STOP_WORDS)


def highlights(text: str, parsed: ParsedQuery) -> list[tuple[int, int]]:
    """(start, end) character offsets of the whole words of `text` that a term of the query
    matches: the same stem (either language), a prefix term's beginning, a phrase's words; stop
    words are not marked."""
    wanted: set[str] = set()
    prefixes: list[str] = []
    stop = ALL_STOP_WORDS
    for term in parsed.terms:
        if term.prefix:
            prefixes.append(term.text)
            continue
        for word in term.words:
            if word not in stop:
                wanted |= stems(word)
    spans = []
    for match in re.finditer(r"[^\W_]+", text):
        word = unicodedata.normalize("NFC", match.group()).casefold()
        if word in stop:
            continue
        if stems(word) & wanted or any(word.startswith(p) for p in prefixes):
            spans.append((match.start(), match.end()))
    return spans


def satisfies(text: str, parsed: ParsedQuery) -> bool:
    """Whether `text` meets the query's conditions: each clause with a phrase holds one of its
    terms, and no excluded term is in it (words compared by stem, as the index does)."""
    doc = [stems(w) for w in _content(words(text))]
    if any(_holds(doc, term) for term in parsed.excluded):
        return False
    return all(
        any(_holds(doc, term) for term in clause.terms)
        for clause in parsed.clauses
        if clause.required
    )


def _content(found: list[str]) -> list[str]:
    return [w for w in found if w not in ALL_STOP_WORDS]


def _holds(doc: list[set[str]], term: Term) -> bool:
    if term.prefix:
        return any(any(s.startswith(term.text) for s in stem_set) for stem_set in doc)
    want = [stems(w) for w in _content(term.words)]
    if not want:  # a phrase of stop words only: the index matches nothing for it either
        return False
    return any(
        all(doc[i + j] & want[j] for j in range(len(want))) for i in range(len(doc) - len(want) + 1)
    )
