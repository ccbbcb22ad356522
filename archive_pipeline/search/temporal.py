"""Temporal words in a query mapped to decade partitions: "in 1989", "the 1980s", "the eighties",
"the '80s". A bare number ("frame 1999") is not taken for a date: years need a preposition."""

from __future__ import annotations

import re
from dataclasses import dataclass

NUMBERS = {
    "twenties": 2,
    "thirties": 3,
    "forties": 4,
    "fifties": 5,
    "sixties": 6,
    "seventies": 7,
    "eighties": 8,
    "nineties": 9,
}
_YEAR = r"(19\d\d|20[0-2]\d)"
PATTERNS = [
    # "in 1989", "from 1961", "during 1974", "around 2008"
    (re.compile(rf"\b(?:in|from|during|around|circa|of)\s+{_YEAR}\b", re.I), "year"),
    # "the 1980s", "1980s", "the 1980's"
    (re.compile(r"\b(?:(?:in|from|during)\s+)?(?:the\s+)?(19\d0|20[0-2]0)'?s\b", re.I), "decade"),
    # "the 80s", "the '80s"
    (re.compile(r"\b(?:(?:in|from|during)\s+)?the\s+'?([2-9]0)'?s\b", re.I), "short"),
    # "the eighties", "the nineteen-eighties"
    (
        re.compile(
            r"\b(?:(?:in|from|during)\s+)?the\s+(?:nineteen[\s-]*)?(" + "|".join(NUMBERS) + r")\b",
            re.I,
        ),
        "word",
    ),
]


@dataclass(frozen=True)
class TemporalFilter:
    """Decades read from a query, the phrases they came from and the query without them."""

    decades: tuple[str, ...]
    phrases: tuple[str, ...]
    remaining: str

    def describe(self) -> str:
        """Where the filter came from, for the result: 'query: "in the nineties"'."""
        return "query: " + ", ".join(f'"{p}"' for p in self.phrases)


def _decade(kind: str, value: str) -> str:
    if kind == "year":
        return f"{value[:3]}0s"
    if kind == "decade":
        return f"{value}s"
    if kind == "short":
        return f"19{value}s"
    return f"19{NUMBERS[value.lower()]}0s"


def parse_temporal(query: str) -> TemporalFilter | None:
    """The decades a query names, or None when it names none."""
    decades: list[str] = []
    phrases: list[str] = []
    remaining = query
    for pattern, kind in PATTERNS:
        for match in pattern.finditer(remaining):
            decade = _decade(kind, match.group(1))
            if decade not in decades:
                decades.append(decade)
            phrases.append(match.group(0))
        remaining = pattern.sub(" ", remaining)
    if not decades:
        return None
    remaining = re.sub(r"\s+", " ", remaining).strip(" ,.;?!")
    return TemporalFilter(tuple(decades), tuple(phrases), remaining)
