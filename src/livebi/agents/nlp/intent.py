"""Intent extraction: the schema-independent structure of a question.

Given tokens, find what the question *asks for* before knowing what its nouns mean:
aggregation words ("average"), ranking ("top 5", "which ... the most"), numeric comparisons
("at least 3", "over 15"), breakdown markers ("by", "per", "for each"), time periods and
grains, and the question's shape (listing, share, comparison, correlation). Tokens that carry
this structure are *consumed* so the schema linker only sees the nouns.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Callable

from . import lexicon as lx
from .existence import ABSENCE_WORDS, PRESENCE_WORDS
from .normalize import Token
from .timeexpr import TimeFindings, extract_time


@dataclasses.dataclass
class Comparison:
    """``<something> op value``; ``start``/``end`` span the comparator and number tokens."""

    op: str
    value: float
    start: int
    end: int
    upper: float | None = None  # for "between a and b"
    times: bool = False  # "ordered more than 1200 times": compares how many related rows there are
    concept: tuple[str, ...] = ()  # "taller than 200": words of the column the comparative implies
    against: str | None = None  # "above the average": compared with this aggregate of the column
    others: tuple[float, ...] = ()  # op "in": the values after the first ("grade 9 or 10")

    @property
    def values(self) -> list[float]:
        """The operands: one value, both bounds of "between", or every value of "in"."""
        if self.upper is not None:
            return [self.value, self.upper]
        return [self.value, *self.others]


@dataclasses.dataclass
class Intent:
    tokens: list[Token]
    consumed: set[int] = dataclasses.field(default_factory=set)
    aggs: dict[int, str] = dataclasses.field(default_factory=dict)  # token index -> agg
    agg_ends: dict[int, int] = dataclasses.field(default_factory=dict)  # agg start -> end
    agg_counts: dict[int, int] = dataclasses.field(default_factory=dict)  # "the 3 biggest": start -> 3
    distinct_at: set[int] = dataclasses.field(default_factory=set)
    rank_n: int | None = None
    rank_dir: str | None = None  # "desc" | "asc"
    rank_at: int | None = None  # index of the first token after the ranking phrase
    rank_explicit: bool = False  # the user gave the number
    rank_superlative: int | None = None  # index after "the most"/"the least" (which X has ...)
    rank_by_sales: bool = False  # "best-selling", "top sellers": ranked by sales, not counted
    rank_by_count: bool = False  # "the most common hometown": ranked by how many rows have it
    rank_superlative_before: int | None = None  # "whose price is the highest": index of "is"
    comparisons: list[Comparison] = dataclasses.field(default_factory=list)
    markers: dict[int, str] = dataclasses.field(default_factory=dict)  # index -> marker text
    wants_list: bool = False
    question_word: str | None = None  # which | what | how many | how much
    which_n: int | None = None  # "which 3 countries ...": how many the superlative keeps
    which_n_at: int | None = None  # the token holding that number
    negations: set[int] = dataclasses.field(default_factory=set)  # "excluding", "not", "other than"
    share: bool = False
    growth: bool = False  # "revenue growth by year": the change against the previous period
    versus: bool = False
    correlation: bool = False
    list_dir: str | None = None  # "in descending order", "alphabetically": how a listing is ordered
    order_at: int | None = None  # first token of the column after "sorted by" / "in order of"
    alphabetical: bool = False  # "alphabetically", "in reverse lexicographical order": by a text column
    time: TimeFindings = dataclasses.field(default_factory=TimeFindings)
    #: "the youngest teacher", "the most recent cartoon": (token index, adjective) of a
    #: superlative adjective that names its own column (age, a date, weight...)
    extreme: tuple[int, str] | None = None
    all_columns: bool = False  # "all the information about X", "every detail of X": every column

    @property
    def superlative(self) -> bool:
        """A superlative ranks something: "the most customers", "whose price is the highest"."""
        return self.rank_superlative is not None or self.rank_superlative_before is not None

    def norm(self, i: int) -> str:
        return self.tokens[i].norm if 0 <= i < len(self.tokens) else ""

    def free(self, i: int) -> bool:
        return 0 <= i < len(self.tokens) and i not in self.consumed


_BY_FIRST_WORD: dict[int, tuple[object, dict[str, list[tuple[str, ...]]]]] = {}


def _match(tokens: list[Token], i: int, phrases) -> tuple[tuple[str, ...], int] | None:
    """Longest phrase (a tuple of words) from ``phrases`` starting at token ``i``.

    Phrases are indexed by their first word once per phrase table (the tables are module
    constants), so a token costs a dict lookup rather than a scan of every phrase."""
    if not 0 <= i < len(tokens):
        return None
    cached = _BY_FIRST_WORD.get(id(phrases))
    if cached is None or cached[0] is not phrases or sum(map(len, cached[1].values())) != len(phrases):
        index: dict[str, list[tuple[str, ...]]] = {}
        for phrase in phrases:
            index.setdefault(phrase[0], []).append(phrase)
        for group in index.values():
            group.sort(key=len, reverse=True)
        cached = (phrases, index)
        _BY_FIRST_WORD[id(phrases)] = cached
    for phrase in cached[1].get(tokens[i].norm, ()):
        n = len(phrase)
        if tuple(t.norm for t in tokens[i:i + n]) == phrase:
            return phrase, n
    return None


def extract_intent(
    tokens: list[Token],
    today: dt.date,
    *,
    is_schema_phrase: Callable[[int, int], bool] = lambda i, n: False,
) -> Intent:
    """Find the structure of a question.

    Args:
        tokens: the normalized question.
        today: anchor for relative time expressions.
        is_schema_phrase: ``(start, length) -> bool``; True when tokens ``start..start+length``
            name something in the schema (so "first name" is a column, not the aggregation
            "first", and "last name" is not "last ... = max").
    """
    intent = Intent(tokens)
    n = len(tokens)

    def shadowed(i: int) -> bool:
        return any(is_schema_phrase(i, k) for k in range(2, 5))

    # 1. comparisons and rankings (they own the numbers, so do them before years)
    i = 0
    while i < n:
        found = _match(tokens, i, lx.COMPARATORS)
        if found and not shadowed(i):
            phrase, used = found
            op = lx.COMPARATORS[phrase]
            if phrase in {("or", "more"), ("or", "less"), ("or", "fewer")}:
                # "3 or more orders": the number came first
                if intent.comparisons and intent.comparisons[-1].end == i:
                    intent.comparisons[-1].op = op
                    intent.comparisons[-1].end = i + used
                    intent.consumed.update(range(i, i + used))
                i += used
                continue
            number = _number_at(tokens, i + used, after_comparator=True)
            symbol_after_number = phrase[0] in {"=", ">", "<", ">=", "<="} and i > 0 and tokens[i - 1].kind == "number"
            against = _against_aggregate(tokens, i + used) if number is None and op in {">", ">=", "<", "<="} else None
            if against is not None:
                # "whose number of products is above the average": compared with the column's
                # average over the table, a subquery
                agg, size = against
                intent.comparisons.append(Comparison(op, 0.0, i, i + used + size, against=agg))
                intent.consumed.update(range(i, i + used + size))
                i += used + size
                continue
            if number is not None and not symbol_after_number:  # not "1=1"
                value, size = number
                implied = lx.COMPARATIVE_ADJECTIVES.get(phrase[0], ("", ()))[1] if phrase[-1] == "than" else ()
                intent.comparisons.append(Comparison(op, value, i, i + used + size, concept=implied))
                intent.consumed.update(range(i, i + used + size))
                i += used + size
                continue
        if tokens[i].norm in {"between", "from"} and not shadowed(i):
            # "between 1 and 2 paragraphs", "between one and two", "from 1 to 2 sections"
            low = _number_at(tokens, i + 1, after_comparator=True)
            link = tokens[i + 1 + low[1]].norm if low is not None and i + 1 + low[1] < n else ""
            high = _number_at(tokens, i + 2 + low[1], after_comparator=True) if low is not None \
                and link == ("and" if tokens[i].norm == "between" else "to") else None
            if low is not None and high is not None and not _looks_like_years(tokens[i + 1], tokens[i + 2 + low[1]]):
                end = i + 2 + low[1] + high[1]
                intent.comparisons.append(Comparison("between", low[0], i, end, upper=high[0]))
                intent.consumed.update(range(i, end))
                i = end
                continue
        inner = _comparator_before_column(tokens, i, shadowed)
        if inner is not None:
            op, at, number = inner
            intent.comparisons.append(Comparison(op, number[0], at, at + number[1]))
            intent.consumed.update({i, *range(at, at + number[1])})
            i = at + number[1]
            continue
        equal = _equal_values(tokens, i, is_schema_phrase)
        if equal is not None and not shadowed(i):
            # "in grade 10", "aged either 32 or 33": a number right after a noun is its value
            start, values, end = equal
            op = "=" if len(values) == 1 else "in"
            intent.comparisons.append(Comparison(op, values[0], start, end, others=tuple(values[1:])))
            intent.consumed.update(range(start, end))
            i = end
            continue
        split = _split_comparison(tokens, i)
        if split is not None:
            op, than, number = split
            # "a greater weight than 10": the comparison starts at "than", so "weight" binds
            # to it as the measure before a comparator does
            intent.comparisons.append(Comparison(op, number[0], than, than + 1 + number[1]))
            intent.consumed.update({i, *range(than, than + 1 + number[1])})
            i += 1
            continue
        lead = _number_at(tokens, i, after_comparator=False)
        if lead is not None and _match(tokens, i + lead[1], _NUMBER_FIRST):
            # "3 or more", "two or more", "10+"
            phrase, used = _match(tokens, i + lead[1], _NUMBER_FIRST)  # type: ignore[misc]
            op = "<=" if phrase[-1] in {"less", "fewer"} else ">="
            end = i + lead[1] + used
            intent.comparisons.append(Comparison(op, lead[0], i, end))
            intent.consumed.update(range(i, end))
            i = end
            continue
        i += 1

    for i in range(n):  # "all the information about hiring", "all details of the students"
        k = i + 1 if intent.norm(i + 1) == "the" else i
        if intent.norm(i) in {"all", "every", "full", "complete"} and intent.norm(k + 1) in _ALL_COLUMN_WORDS \
                and intent.free(i) and not shadowed(k + 1):
            intent.all_columns = True
            intent.consumed.update(range(i, k + 2))
            if intent.norm(k + 2) in {"about", "on", "of", "for", "from", "in"}:
                intent.consumed.add(k + 2)
            break
    for c in intent.comparisons:  # "more than 1200 times", "at least 3 times"
        if intent.norm(c.end) in {"times", "time"}:
            c.times = True
            intent.consumed.add(c.end)
            c.end += 1
    _ordering(intent)

    for i, tok in enumerate(tokens):
        if i in intent.consumed:
            continue
        norm = tok.norm
        if norm in lx.SALES_RANK_WORDS and intent.norm(i + 1) in lx.SELLING_WORDS and intent.rank_n is None:
            # "best-selling product", "top sellers", "worst selling categories"
            intent.rank_superlative, intent.rank_by_sales = i + 2, True
            intent.rank_dir = "asc" if norm in lx.RANK_ASC else "desc"
            intent.consumed.update({i, i + 1})
            if i > 0 and tokens[i - 1].norm in {"the", "our", "my", "their"}:
                intent.consumed.add(i - 1)
            continue
        if norm in lx.RANKING_VERBS and intent.norm(i + 1) in {"best", "worst"} and intent.rank_n is None:
            # "which products sell best", "which region performed worst": ranked by the measure
            intent.rank_superlative = i + 2
            intent.rank_dir = "asc" if intent.norm(i + 1) == "worst" else "desc"
            intent.consumed.update({i, i + 1})
            continue
        if i in intent.consumed:
            continue
        if norm in {"most", "least"} and intent.norm(i + 1) in _COMMON_WORDS and intent.rank_n is None:
            # "the most common hometown", "nationality that is most common": rows counted
            intent.rank_superlative, intent.rank_by_count = i + 2, True
            intent.rank_dir = "desc" if norm == "most" else "asc"
            intent.consumed.update({i, i + 1})
            if intent.norm(i - 1) in _SUPERLATIVE_LEADS:
                intent.consumed.add(i - 1)
            continue
        adjective = _extreme_adjective(intent, i)
        if adjective is not None and intent.extreme is None and not shadowed(i):
            word, used = adjective
            intent.extreme = (i, word)
            intent.consumed.update(range(i, i + used))
            continue
        if (norm in lx.RANK_DESC or norm in lx.RANK_ASC) and not shadowed(i) and intent.rank_n is None:
            direction = "desc" if norm in lx.RANK_DESC else "asc"
            nxt = tokens[i + 1] if i + 1 < n else None
            count = None
            if nxt is not None and nxt.kind == "number" and nxt.value and nxt.value.is_integer() and nxt.value < 1900:
                count = int(nxt.value)
            elif nxt is not None and nxt.norm in lx.NUMBER_WORDS and nxt.norm not in {"a", "an"}:
                count = lx.NUMBER_WORDS[nxt.norm]
            if norm in {"top", "bottom"} or count is not None:
                intent.rank_dir = direction
                intent.rank_n = count if count is not None else 10
                intent.rank_explicit = count is not None
                used = 2 if count is not None else 1
                intent.consumed.update(range(i, i + used))
                intent.rank_at = i + used
            elif norm in _SUPERLATIVES and _superlative_frame(intent, i):
                # "which country has the most customers", "the template used by most documents",
                # "the department with the greatest number of degrees": a superlative ranking,
                # decided later; "number of"/"amount of" after it belongs to the ranking
                after = i + 1
                if (intent.norm(after), intent.norm(after + 1)) in _COUNT_NOUNS:
                    intent.consumed.update({after, after + 1})
                    after += 2
                intent.rank_superlative = after
                intent.rank_dir = direction
                intent.consumed.add(i)
                if intent.norm(i - 1) in _SUPERLATIVE_LEADS:
                    intent.consumed.add(i - 1)
                    if intent.norm(i - 2) in {"is", "are", "was", "were"} and not (
                            after < n and tokens[after].kind == "word" and intent.free(after)):
                        # "the shop whose number of products is the largest": the superlative
                        # is about the noun before "is"
                        intent.rank_superlative = None
                        intent.rank_superlative_before = i - 2
                        intent.consumed.add(i - 2)

    # 2. time (periods, grains, trend words)
    # a grain word inside a column's name ("weekly rank", "monthly fee") is that column
    in_names = {k for i in range(n) for size in (2, 3) if is_schema_phrase(i, size)
                and any(tokens[j].norm in lx.GRAIN_ADJECTIVES for j in range(i, min(i + size, n)))
                for k in range(i, i + size)}
    intent.time = extract_time(tokens, today, skip=set(intent.consumed) | in_names)
    intent.consumed |= intent.time.consumed

    # 3. aggregations, distinct, markers, shape words
    i = 0
    while i < n:
        if i in intent.consumed:
            i += 1
            continue
        found = _match(tokens, i, lx.AGGREGATIONS)
        if found and not shadowed(i):
            phrase, used = found
            agg = lx.AGGREGATIONS[phrase]
            if phrase == ("how", "many"):
                intent.question_word = "how many"
            intent.aggs[i] = agg
            intent.agg_ends[i] = i + used
            intent.consumed.update(range(i, i + used))
            before = tokens[i - 1] if i > 0 else None
            if agg in {"max", "min"} and before is not None and before.kind == "number" and i - 1 not in intent.consumed \
                    and before.value and before.value.is_integer() and 0 < before.value < 1900:
                intent.agg_counts[i] = int(before.value)  # "the 3 biggest orders"
                intent.consumed.add(i - 1)
            i += used
            continue
        norm = tokens[i].norm
        if norm in ABSENCE_WORDS and norm not in lx.NEGATIONS and not (i + 1 < n and tokens[i + 1].kind == "number"):
            intent.negations.add(i)  # "students with no friends", "customers who never ordered"
            intent.consumed.add(i)
            i += 1
            continue
        if norm in PRESENCE_WORDS:
            intent.consumed.add(i)  # "any", "some": they only quantify what follows
            i += 1
            continue
        if norm in lx.NEGATIONS or _match(tokens, i, lx.NEGATION_PHRASES):
            used = _match(tokens, i, lx.NEGATION_PHRASES)[1] if _match(tokens, i, lx.NEGATION_PHRASES) else 1
            intent.negations.update(range(i, i + used))
            intent.consumed.update(range(i, i + used))
            i += used
            continue
        if norm == "how" and intent.norm(i + 1) == "much" and intent.question_word is None:
            intent.question_word = "how much"  # an amount, not a listing
            intent.consumed.update({i, i + 1})
            i += 2
            continue
        if norm in {"which", "what"} and i + 1 < n and tokens[i + 1].kind == "number" \
                and tokens[i + 1].value and tokens[i + 1].value.is_integer() and 0 < tokens[i + 1].value < 1900:
            intent.which_n = int(tokens[i + 1].value)  # "which 3 countries sold the most"
            intent.which_n_at = i + 1
            intent.consumed.add(i + 1)
        if norm in lx.DISTINCT_WORDS:
            intent.distinct_at.add(i)
            intent.consumed.add(i)
        if norm in {"across", "among", "amongst"} and intent.norm(i + 1) in {"all", "the", "every"}:
            intent.consumed.update({i, i + 1})  # "average earnings across all players": overall
            i += 2
            continue
        marker = _match(tokens, i, lx.BREAKDOWN_MARKERS)
        if marker and not (marker[0] == ("each",) and i > 0 and tokens[i - 1].norm == "for"):
            intent.markers[i] = " ".join(marker[0])
            intent.consumed.update(range(i, i + marker[1]))
            i += marker[1]
            continue
        if norm in {"which", "what", "who"} and intent.question_word is None:
            intent.question_word = "which"
        if norm in {"list", "show", "display", "find", "details", "records", "rows", "who", "names"}:
            intent.wants_list = True
        if norm in lx.SHARE_WORDS and i > 0 and tokens[i - 1].norm in _AGG_WORDS and is_schema_phrase(i, 1):
            pass  # "the maximum share": a column named share, not a share of a total
        elif norm in lx.SHARE_WORDS and norm != "breakdown" or (norm == "%" and i > 0):
            intent.share = True
            intent.consumed.add(i)
        if norm in lx.VERSUS_WORDS:
            intent.versus = True
            intent.consumed.add(i)
        if norm in lx.GROWTH_WORDS:
            intent.growth = True
            intent.consumed.add(i)
        if norm in lx.CORRELATION_WORDS:
            intent.correlation = True
            intent.consumed.add(i)
        i += 1
    return intent


def _extreme_adjective(intent: Intent, i: int) -> tuple[str, int] | None:
    """A superlative adjective that names its own column at token ``i`` ("youngest",
    "most recent", "most recently"): (its key in ``lx.EXTREME_ADJECTIVES``, tokens used)."""
    for used in (3, 2, 1):
        words = " ".join(intent.norm(k) for k in range(i, i + used))
        if words in lx.EXTREME_ADJECTIVES and all(intent.free(k) for k in range(i, i + used)):
            return words, used
    return None


_ALL_COLUMN_WORDS = {"information", "info", "details", "detail", "data", "columns", "fields", "attributes"}
_ALPHABETICAL = {"alphabetical", "alphabetically", "lexicographical", "lexicographic", "lexicographically"}
_COMMON_WORDS = {"common", "commonly", "frequent", "frequently", "popular", "often", "usual", "typical"}
_AGG_WORDS = {w for phrase in lx.AGGREGATIONS for w in phrase if len(phrase) == 1}
_SUPERLATIVES = {"most", "least", "fewest", "highest", "lowest", "best", "worst", "biggest", "largest",
                 "smallest", "greatest"}
_SUPERLATIVE_LEADS = {"the", "our", "my", "their"}
#: words before a bare superlative that make it one ("has most students", "with fewest orders")
_SUPERLATIVE_VERBS = {"has", "have", "had", "with", "by", "in", "of", "for", "on", "at", "contains", "got",
                      "offers", "offer", "having"}
_COUNT_NOUNS = {("number", "of"), ("amount", "of"), ("count", "of"), ("numbers", "of")}


def _superlative_frame(intent: Intent, i: int) -> bool:
    """Whether the ranking word at ``i`` is a superlative over what follows: after "the"
    ("the most customers"), before "number of" ("most number of degrees"), or right after a
    verb or preposition that takes it ("used by most documents", "with fewest orders")."""
    before, after = intent.norm(i - 1), (intent.norm(i + 1), intent.norm(i + 2))
    if before in _SUPERLATIVE_LEADS or after in _COUNT_NOUNS:
        return True
    return before in _SUPERLATIVE_VERBS and intent.free(i + 1) and intent.tokens[i + 1].kind == "word"


def _comparator_before_column(tokens: list[Token], i: int, shadowed) -> tuple[str, int, tuple[float, int]] | None:
    """"under age 30", "over weight 10": a one-word comparator, one or two words, then a number:
    (operator, index of the number, the number). The words between bind to the comparison as
    a measure before a comparator does."""
    if tokens[i].norm not in {"under", "over", "above", "below"} or shadowed(i):
        return None
    for gap in (1, 2):
        at = i + 1 + gap
        if at < len(tokens) and all(t.kind == "word" for t in tokens[i + 1:at]) \
                and tokens[i + 1].norm not in {"the", "a", "an", "all", "each", "every", "my", "our", "their"}:
            number = _number_at(tokens, at, after_comparator=True)
            if number is not None and tokens[at].kind == "number":
                return lx.COMPARATORS[(tokens[i].norm,)], at, number
    return None


#: words after which a number is not the value of the noun before ("top 10", "in 2013", "with 5")
_NOT_VALUE_BEFORE = {"top", "bottom", "first", "last", "next", "past", "previous", "the", "a", "an", "which", "what",
                     "than", "least", "most", "limit", "and", "or", "of", "in", "at", "by", "per", "from", "to",
                     "between", "after", "before", "since", "until", "for", "with", "over", "under", "above",
                     "below", "exactly", "is", "are", "was", "were", "all", "only", "just", "about", "around",
                     "show", "list", "give", "find", "me", "those", "these", "every", "each", "have", "has", "had"}


def _equal_values(tokens: list[Token], i: int, is_schema_phrase) -> tuple[int, list[float], int] | None:
    """A number (or "either N or M", "N, M or K") right after a noun: (first token of the
    values, the values, end). Years are left to time expressions, counts before a noun ("5
    orders") and ranks ("top 10") are not values."""
    if tokens[i].kind != "number" and tokens[i].norm != "either":
        return None
    if any(is_schema_phrase(start, size) for size in (2, 3) for start in range(i - size + 1, i + 1) if start >= 0):
        return None  # "Client 0042": the number is part of a name the schema knows
    if i == 0 or tokens[i - 1].kind != "word" or tokens[i - 1].norm in _NOT_VALUE_BEFORE \
            or (tokens[i - 1].norm in lx.GRAIN_NOUNS and not is_schema_phrase(i - 1, 1)) \
            or tokens[i - 1].norm in lx.NUMBER_WORDS:
        return None
    k = i + 1 if tokens[i].norm == "either" else i
    values: list[float] = []
    while k < len(tokens) and tokens[k].kind == "number" and tokens[k].value is not None:
        value = tokens[k].value
        if value.is_integer() and 1900 <= value <= 2100:
            return None
        values.append(value)
        if k + 2 < len(tokens) and tokens[k + 1].norm in {"or", ",", "and"} and tokens[k + 2].kind == "number":
            k += 2
            continue
        k += 1
        break
    if not values or (k < len(tokens) and tokens[k].kind == "word" and tokens[k].norm not in _VALUE_FOLLOWERS):
        return None  # "grade 10 students" may still be fine, but "2 orders" is a count
    return i, values, k


_VALUE_FOLLOWERS = {"and", "or", "but", "who", "which", "that", "with", "in", "from", "by", "of", "for", "are",
                    "is", "was", "were", "have", "has", "sorted", "ordered", "order", "come", "?"}


def _against_aggregate(tokens: list[Token], i: int) -> tuple[str, int] | None:
    """"the average", "average", "the average number of products": an aggregate of the
    compared column itself, and how many tokens say it (the column's own name after it is
    part of the phrase only when it ends the question or a clause)."""
    k = i + 1 if i < len(tokens) and tokens[i].norm == "the" else i
    if k >= len(tokens):
        return None
    agg = {"average": "avg", "mean": "avg", "avg": "avg", "minimum": "min", "maximum": "max"}.get(tokens[k].norm)
    if agg is None:
        return None
    end = k + 1
    if end < len(tokens) and tokens[end].norm == "of":
        return None  # "more than the average of all X" names another set: not handled here
    return agg, end - i


def _split_comparison(tokens: list[Token], i: int) -> tuple[str, int, tuple[float, int]] | None:
    """"greater weight than 10", "more students than 5": a comparative, one or two words, then
    "than" and a number: (operator, index of "than", the number)."""
    op = _COMPARATIVES.get(tokens[i].norm)
    if op is None:
        return None
    for gap in (1, 2):
        than = i + 1 + gap
        if than < len(tokens) and tokens[than].norm == "than" and all(t.kind == "word" for t in tokens[i + 1:than]):
            number = _number_at(tokens, than + 1, after_comparator=True)
            if number is not None:
                return op, than, number
    return None


_COMPARATIVES = {"more": ">", "greater": ">", "higher": ">", "larger": ">", "bigger": ">", "less": "<",
                 "fewer": "<", "lower": "<", "smaller": "<"}
_NUMBER_FIRST = {("or", "more"), ("or", "less"), ("or", "fewer"), ("plus",), ("+",), ("or", "greater")}


def _number_at(tokens: list[Token], i: int, *, after_comparator: bool) -> tuple[float, int] | None:
    """The number starting at token ``i`` and how many tokens it takes: digits, or a number
    word ("two", "a single"); after a comparator also "one"/"a"/"an" ("more than one document",
    "more than a single order"), which elsewhere are pronouns or articles."""
    if not 0 <= i < len(tokens):
        return None
    tok = tokens[i]
    if tok.kind == "number":
        return (tok.value or 0.0), 1
    if tok.norm in {"a", "an"} and i + 1 < len(tokens) and tokens[i + 1].norm == "single":
        return 1.0, 2
    if tok.norm == "single" and after_comparator:
        return 1.0, 1
    if tok.norm in lx.NUMBER_WORDS and tok.norm not in {"a", "an"} \
            and (after_comparator or tok.norm not in {"one", "hundred"}):
        return float(lx.NUMBER_WORDS[tok.norm]), 1
    return None


def _looks_like_years(a: Token, b: Token) -> bool:
    return all(t.value is not None and t.value.is_integer() and 1900 <= t.value <= 2100 for t in (a, b))


def _ordering(intent: Intent) -> None:
    """How a listing is ordered: "sorted|ordered|arranged by X", "in descending|ascending
    order (of X)", "from highest to lowest", "alphabetically". The words are consumed, so
    "by" is not a breakdown and "highest" not a ranking; ``order_at`` points at the column."""
    n = len(intent.tokens)
    if intent.norm(0) in {"sort", "order", "arrange", "rank"}:
        # "sort employee names by their age": the verb leads, its "by" comes later
        by = next((k for k in range(2, n - 1) if intent.norm(k) == "by" and intent.free(k)), None)
        if by is not None:
            intent.consumed.update({0, by})
            intent.order_at = by + 1
            if intent.norm(by + 1) in {"their", "its", "the"} and intent.free(by + 2):
                intent.consumed.add(by + 1)
                intent.order_at = by + 2
    for i in range(n):
        if i in intent.consumed:
            continue
        norm = intent.norm(i)
        if norm in lx.ORDER_VERBS and intent.norm(i + 1) == "by" and intent.free(i + 2):
            intent.order_at = i + 2
            intent.consumed.update({i, i + 1})
            if intent.norm(i + 2) in lx.ORDER_DIRECTIONS:  # "ordered by ascending age"
                intent.list_dir = lx.ORDER_DIRECTIONS[intent.norm(i + 2)]
                intent.consumed.add(i + 2)
                intent.order_at = i + 3
            elif intent.norm(i + 2) in {"their", "its", "the"} and intent.free(i + 3):
                intent.consumed.add(i + 2)  # "ordered by their names"
                intent.order_at = i + 3
        elif norm in {"reverse", "reversed", "inverse"} and intent.norm(i + 1) in _ALPHABETICAL:
            intent.list_dir, intent.alphabetical = "desc", True  # "in reverse alphabetical order"
            intent.consumed.update({i, i + 1})
            if intent.norm(i - 1) == "in":
                intent.consumed.add(i - 1)
            if intent.norm(i + 2) == "order":
                intent.consumed.add(i + 2)
        elif norm in _ALPHABETICAL and norm not in lx.ORDER_DIRECTIONS:
            intent.list_dir, intent.alphabetical = intent.list_dir or "asc", True  # "lexicographical order"
            intent.consumed.add(i)
            if intent.norm(i + 1) == "order":
                intent.consumed.add(i + 1)
        elif norm in lx.ORDER_DIRECTIONS:
            if norm in _ALPHABETICAL:
                intent.alphabetical = True
            intent.list_dir = lx.ORDER_DIRECTIONS[norm]
            intent.consumed.add(i)
            if intent.norm(i - 1) == "in":
                intent.consumed.add(i - 1)
            if intent.norm(i + 1) == "order":
                intent.consumed.add(i + 1)
                if intent.norm(i + 2) in {"of", "by"} and intent.free(i + 3) and intent.order_at is None:
                    intent.order_at = i + 3
                    intent.consumed.add(i + 2)
        elif norm == "from" and (intent.norm(i + 1), intent.norm(i + 2)) in lx.ORDER_SPANS:
            intent.list_dir = lx.ORDER_SPANS[(intent.norm(i + 1), intent.norm(i + 2))]
            intent.consumed.update(range(i, i + 4))
