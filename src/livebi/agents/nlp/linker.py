"""Schema linking: match the question's words to tables, columns, measures and values.

Two steps, both driven by the semantic model's phrase index:

* :func:`correct_spelling` replaces unknown words with a close known word ("revnue" ->
  "revenue"), so later stages see the corrected text; corrections become assumptions.
* :func:`link` finds, left to right, the longest phrase at each position that the model knows
  (a table's name, a column's human name, a measure concept, a value from the value index) and
  returns one :class:`Mention` per phrase with every thing it could mean. Choosing between
  those meanings needs the whole question, so it is the planner's job.
"""

from __future__ import annotations

import dataclasses
import functools

from . import lexicon as lx
from .model import Link, SemanticModel
from .normalize import Token, closest_words, edit_distance, tokenize
from .timeexpr import MONTHS, UNITS


@dataclasses.dataclass
class Mention:
    start: int
    end: int
    text: str  # as typed
    links: list[Link]
    norm: str = ""  # as understood (normalized, spelling corrected)

    def of_kind(self, *kinds: str) -> list[Link]:
        return [link for link in self.links if link.kind in kinds]


@functools.lru_cache(maxsize=1)
def lexicon_words() -> frozenset[str]:
    """Every word the intent extractor understands."""
    words: set[str] = set(lx.STOPWORDS) | lx.DISTINCT_WORDS | lx.RANK_ASC | lx.RANK_DESC
    for table in (lx.AGGREGATIONS, lx.COMPARATORS):
        for phrase in table:
            words.update(phrase)
    for marker in lx.BREAKDOWN_MARKERS:
        words.update(marker)
    words |= set(lx.GRAIN_ADJECTIVES) | set(lx.GRAIN_NOUNS) | set(lx.NUMBER_WORDS)
    words |= lx.LIST_WORDS | lx.SHARE_WORDS | lx.VERSUS_WORDS | lx.CORRELATION_WORDS | lx.NEGATIONS
    words |= {w for phrase in lx.NEGATION_PHRASES for w in phrase} | {"much"} | lx.SALES_VERBS | lx.SELLING_WORDS
    words |= set(MONTHS) | set(UNITS) | {"today", "yesterday", "ytd", "mtd", "qtd", "this",
                                         "current", "last", "past", "previous", "trailing",
                                         "trend", "trends", "timeline", "evolution", "since",
                                         "before", "after", "until", "through", "plus"}
    words |= {w for phrase in lx.EXTREME_ADJECTIVES for w in phrase.split()} | lx.STRUCTURE_WORDS
    for concept_words in lx.CONCEPT_WORDS.values():
        for phrase in concept_words:
            words.update(phrase.split())
    return frozenset(words)


def vocabulary_by_length(model: SemanticModel) -> dict[int, list[str]]:
    """Known words bucketed by length for the spelling corrector (cached on the model)."""
    cached = getattr(model, "_vocab_by_length", None)
    if cached is None:
        cached = {}
        for word in sorted(model.vocabulary | lexicon_words()):
            if word.isalpha():
                cached.setdefault(len(word), []).append(word)
        model._vocab_by_length = cached  # type: ignore[attr-defined]
        model._known_words = frozenset(model.vocabulary | lexicon_words())  # type: ignore[attr-defined]
    return cached


def correct_spelling(tokens: list[Token], model: SemanticModel) -> list[tuple[str, str]]:
    """Fix words the model and lexicon do not know; returns ``(typed, read as)`` pairs."""
    vocab = vocabulary_by_length(model)
    known = model._known_words  # type: ignore[attr-defined]
    fixes: list[tuple[str, str]] = []
    for tok in tokens:
        if tok.kind != "word" or not tok.norm.isalpha() or tok.norm in known:
            continue
        if lx.singular(tok.norm) in known or lx.plural(tok.norm) in known:
            continue
        candidates = closest_words(tok.norm, vocab, n=1)
        if candidates and _inflection_of(tok.norm, candidates[0]):
            continue  # "owned" is the verb of "owner", not a typo of it
        if candidates:
            fixes.append((tok.text, candidates[0]))
            tok.corrected_from = tok.norm
            tok.norm = candidates[0]
    return fixes


def _inflection_of(typed: str, known: str) -> bool:
    """Whether ``typed`` is another form of a word sharing ``known``'s stem ("owned"/"owner",
    "ordered"/"orders", "teaching"/"teacher"): a different word, never a misspelling."""
    for suffix in ("ing", "ed"):
        if typed.endswith(suffix) and len(typed) - len(suffix) >= 3:
            stem = typed[: -len(suffix)]
            if known.startswith(stem) or known.startswith(stem.rstrip("e")):
                return True
    return False


def link(tokens: list[Token], consumed: set[int], model: SemanticModel) -> list[Mention]:
    """Mentions of schema things among the tokens not consumed by intent extraction."""
    mentions: list[Mention] = []
    n = len(tokens)
    i = 0
    while i < n:
        if i in consumed:
            i += 1
            continue
        tok = tokens[i]
        if tok.kind == "quoted":
            links = _quoted_links(tok, model)
            mentions.append(Mention(i, i + 1, tok.text, links or [Link("literal", "", value=tok.text[1:-1].strip())]))
            i += 1
            continue
        found = None
        for size in range(min(model.max_phrase_len, n - i), 0, -1):
            span = range(i, i + size)
            if any(k in consumed or tokens[k].kind not in {"word", "number"} for k in span):
                continue
            phrase = tuple(tokens[k].norm for k in span)
            if size == 1 and (phrase[0] in lx.STOPWORDS or tokens[i].kind == "number"):
                continue
            links = model.phrases.get(phrase)
            if not links and size == 3 and phrase[1] == "of":
                links = model.phrases.get((phrase[0], phrase[2]))  # "number of products": Number_products
            if not links and size <= 3:
                # a plural/singular form the index lacks ("countries" for "country")
                links = model.phrases.get(phrase[:-1] + (lx.singular(phrase[-1]),))
            if not links and 2 < size <= 3 and lx.singular(phrase[0]) == phrase[0]:
                # "final tables made": a column's own words with a plural inside (not "orders cost")
                links = [lk for lk in model.phrases.get(tuple(lx.singular(w) for w in phrase), ())
                         if lk.kind == "column" and lk.score >= 1.0]
            if links and model.code_columns:  # "cv" is a word, "CV" a template type code
                typed_upper = all(tokens[k].text.isupper() for k in span)
                links = [lk for lk in links if typed_upper or not _short_code(lk, model)]
            if links and size == 1 and model.name_columns and not tokens[i].text[:1].isupper():
                # one word of a name among thousands ("rose") is a name only when capitalized
                links = [lk for lk in links if lk.kind != "value" or (lk.table, lk.column) not in model.name_columns]
            if not links and size == 1 and tokens[i].kind == "word":
                links = _value_by_stem(phrase[0], model)  # "engineering" department -> 'engineer'
            if links:
                found = (size, links, " ".join(phrase))
                break
        if (found is None or found[0] == 1) and (joined := _compound(tokens, i, consumed, model)):
            # "high schoolers" names a Highschooler table, "home town" a Hometown column
            found = (2, joined, tokens[i].norm + tokens[i + 1].norm)
        if found:
            size, links, norm = found
            ordered = sorted(links, key=lambda lk: -lk.score)
            text = " ".join(tokens[k].text for k in range(i, i + size))
            mentions.append(Mention(i, i + size, text, ordered, norm))
            i += size
        else:
            i += 1
    return mentions


def _value_by_stem(word: str, model: SemanticModel) -> list[Link]:
    for ending in lx.VALUE_WORD_ENDINGS:
        stem = word[: -len(ending)]
        if word.endswith(ending) and len(stem) >= 5:
            links = [lk for lk in model.phrases.get((stem,), ()) if lk.kind == "value"]
            if links:
                return [dataclasses.replace(lk, score=lk.score - 0.1) for lk in links]
    return []


def _short_code(lk: Link, model: SemanticModel) -> bool:
    return lk.kind == "value" and (lk.table, lk.column) in model.code_columns and len(lk.value or "") <= 3


def _compound(tokens: list[Token], i: int, consumed: set[int], model: SemanticModel) -> list[Link]:
    """Links of two words written as one in the schema ("high schooler" -> ``Highschooler``)."""
    if i + 1 >= len(tokens) or i in consumed or i + 1 in consumed:
        return []
    first, second = tokens[i], tokens[i + 1]
    if first.kind != "word" or second.kind != "word" or first.norm in lx.STOPWORDS or second.norm in lx.STOPWORDS:
        return []
    joined = first.norm + second.norm
    links = model.phrases.get((joined,)) or model.phrases.get((lx.singular(joined),)) or []
    return [lk for lk in links if lk.kind in {"table", "column"}]


def _quoted_links(tok: Token, model: SemanticModel) -> list[Link]:
    words = tuple(t.norm for t in tokenize(tok.norm))
    return [lk for lk in model.phrases.get(words, []) if lk.kind == "value"]


def unknown_words(tokens: list[Token], consumed: set[int], mentions: list[Mention]) -> list[int]:
    """Indexes of content words nobody understood (reported as "ignored", or suggestions)."""
    covered = set(consumed)
    for m in mentions:
        covered.update(range(m.start, m.end))
    known = lexicon_words()
    return [i for i, t in enumerate(tokens)
            if i not in covered and t.kind == "word" and t.norm not in known and len(t.norm) > 1]


_KEY_WORDS = {"id", "ids", "key", "keys", "uuid", "guid", "no", "nos"}


def _schema_words_by_length(model: SemanticModel) -> dict[int, list[str]]:
    cached = getattr(model, "_schema_by_length", None)
    if cached is None:
        cached = {}
        for word in sorted(model.schema_words):
            cached.setdefault(len(word), []).append(word)
        model._schema_by_length = cached  # type: ignore[attr-defined]
    return cached


def suggestions_for(word: str, model: SemanticModel, n: int = 3, *, schema_only: bool = False) -> list[str]:
    """Schema words (and values, unless ``schema_only``) close to ``word`` ("did you mean"),
    a little looser than the automatic spelling correction (two edits from four letters)."""
    lowered = word.lower()
    limit = 1 if len(lowered) < 4 else 2
    vocab = _schema_words_by_length(model) if schema_only else vocabulary_by_length(model)
    concept_words = {w for words in lx.CONCEPT_WORDS.values() for phrase in words for w in phrase.split()}
    scored = []
    for length in range(len(lowered) - limit, len(lowered) + limit + 1):
        for candidate in vocab.get(length, ()):
            if candidate[0] != lowered[0] or candidate in lexicon_words() or candidate in concept_words \
                    or candidate in _KEY_WORDS:
                continue
            distance = edit_distance(lowered, candidate, limit)
            if 0 < distance <= limit:
                # prefer table/column words, then words the typo is a shortening of ("regn")
                scored.append((distance, candidate not in model.schema_words,
                               not _is_subsequence(lowered, candidate), candidate))
    return [w for *_, w in sorted(scored)[:n]]


def _is_subsequence(short: str, long: str) -> bool:
    it = iter(long)
    return all(ch in it for ch in short)
