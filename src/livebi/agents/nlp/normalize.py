"""Tokenizer and normalizer: question text -> a list of :class:`Token`.

The rest of the parser never looks at raw text again. A token keeps its original spelling
(for messages) and a normalized form (lowercase, ``&`` -> ``and``, thousands separators and
``$``/``k``/``m`` suffixes folded into numbers). Quoted strings become one ``quoted`` token so
a user can name a value verbatim; they are only ever used as SQL *literals*.
"""

from __future__ import annotations

import dataclasses
import re

from .lexicon import EXPANSIONS

_TOKEN = re.compile(
    r"""
    (?P<quoted>"[^"]{1,200}"|'[^']{1,200}'|“[^”]{1,200}”)
  | (?P<date>\d{4}-\d{1,2}-\d{1,2})
  | (?P<number>[$€£]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?\s?(?:%|k\b|m\b|bn\b|K\b|M\b)?)
  | (?P<word>[^\W\d_](?:[\w'’.-]*\w)?|\#)
  | (?P<op>>=|<=|!=|<>|[<>=%&])
    """,
    re.VERBOSE | re.UNICODE,
)
_SCALE = {"k": 1_000, "m": 1_000_000, "bn": 1_000_000_000}
_SCALE_WORDS = {"thousand": 1_000, "million": 1_000_000, "millions": 1_000_000, "billion": 1_000_000_000,
                "mn": 1_000_000, "mio": 1_000_000, "bn": 1_000_000_000}


@dataclasses.dataclass
class Token:
    """One unit of the question."""

    text: str  # as typed
    norm: str  # normalized form used for matching
    kind: str  # word | number | date | quoted | op
    value: float | None = None  # for numbers
    corrected_from: str | None = None  # set when spelling correction replaced ``norm``
    start: int = 0  # character offsets in the question
    end: int = 0


def normalize_word(word: str) -> str:
    """Lowercase, unify apostrophes, drop possessive ``'s`` and trailing dots."""
    word = word.lower().replace("’", "'").strip(".")
    if word.endswith("'s"):
        word = word[:-2]
    return word.replace("'", "")


def tokenize(question: str) -> list[Token]:
    """Split a question into tokens; anything that is not a token (punctuation) is dropped."""
    tokens: list[Token] = []
    for match in _TOKEN.finditer(question):
        kind = match.lastgroup or "word"
        text = match.group(0)
        first = len(tokens)
        if kind == "quoted":
            inner = text[1:-1].strip()
            if inner:
                tokens.append(Token(text, inner.lower(), "quoted"))
        elif kind == "number":
            tokens.append(_number_token(text))
        elif kind == "date":
            tokens.append(Token(text, text, "date"))
        elif kind == "op":
            norm = {"&": "and", "<>": "!=", "%": "%"}.get(text, text)
            tokens.append(Token(text, norm, "word" if norm in {"and", "%"} else "op"))
        else:
            norm = normalize_word(text)
            # "year-to-date", "e-commerce": split hyphenated words, keep both halves; and a pasted
            # identifier "section_name" is the words "section name"
            parts = [p for p in re.split(r"[-._]", norm) if p] if ("-" in norm or "." in norm or "_" in norm) else [norm]
            previous = tokens[-1] if tokens else None
            if norm in _SCALE_WORDS and previous is not None and previous.kind == "number" \
                    and previous.value is not None and first == len(tokens):
                # "20 million": scale the number rather than keep a word nobody understands
                previous.value *= _SCALE_WORDS[norm]
                previous.norm = str(int(previous.value)) if previous.value.is_integer() else str(previous.value)
                previous.text = f"{previous.text} {text}"
                previous.end = match.end()
                continue
            if len(parts) == 1 and norm in EXPANSIONS:  # "cheapest" -> "least expensive"
                parts = list(EXPANSIONS[norm])
            for part in parts:
                tokens.append(Token(text if len(parts) == 1 else part, part, "word"))
        for tok in tokens[first:]:
            tok.start, tok.end = match.start(), match.end()
    return tokens


def _number_token(text: str) -> Token:
    raw = text.strip().lower()
    percent = raw.endswith("%")
    raw = raw.rstrip("%").strip()
    scale = 1
    for suffix, factor in _SCALE.items():
        if raw.endswith(suffix):
            raw, scale = raw[: -len(suffix)].strip(), factor
            break
    raw = raw.lstrip("$€£").replace(",", "")
    try:
        value = float(raw) * scale
    except ValueError:  # pragma: no cover - the regex only admits digits here
        return Token(text, text.lower(), "word")
    if percent:
        value = value / 100.0
    norm = str(int(value)) if value.is_integer() else str(value)
    return Token(text, norm, "number", value=value)


# -- spelling ---------------------------------------------------------------------------------


def edit_distance(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance (insert, delete, substitute, swap neighbours).

    Returns ``limit + 1`` as soon as the distance is known to exceed ``limit``, which keeps the
    fuzzy matcher fast over a vocabulary of thousands of words.
    """
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        best = cur[0]
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
            best = min(best, cur[j])
        if best > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[len(b)]


def allowed_edits(word: str) -> int:
    """How many typos a word of this length may carry and still be recognized."""
    if len(word) < 4:
        return 0
    if len(word) < 8:
        return 1
    return 2


def closest_words(word: str, vocabulary: dict[int, list[str]], *, n: int = 3) -> list[str]:
    """Vocabulary words within :func:`allowed_edits` of ``word``, closest first.

    ``vocabulary`` is bucketed by word length so only plausible candidates are compared.
    """
    limit = allowed_edits(word)
    if limit == 0:
        return []
    scored: list[tuple[int, int, str]] = []
    for length in range(len(word) - limit, len(word) + limit + 1):
        for candidate in vocabulary.get(length, ()):
            if candidate[0] != word[0]:
                # a first-letter typo is rare; requiring it avoids silly matches
                continue
            if len(word) > len(candidate) and len(candidate) < 6:
                # an extra letter in a short word is more often another word ("monkey" is
                # not "money") than a typo
                continue
            distance = edit_distance(word, candidate, limit)
            if distance <= limit:
                scored.append((distance, abs(len(candidate) - len(word)), candidate))
    scored.sort()
    return [w for _, _, w in scored[:n]]
