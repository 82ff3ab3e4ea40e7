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
    time: TimeFindings = dataclasses.field(default_factory=TimeFindings)

    def norm(self, i: int) -> str:
        return self.tokens[i].norm if 0 <= i < len(self.tokens) else ""

    def free(self, i: int) -> bool:
        return 0 <= i < len(self.tokens) and i not in self.consumed


def _match(tokens: list[Token], i: int, phrases) -> tuple[tuple[str, ...], int] | None:
    """Longest phrase (a tuple of words) from ``phrases`` starting at token ``i``."""
    best = None
    for phrase in phrases:
        n = len(phrase)
        if tuple(t.norm for t in tokens[i:i + n]) == phrase and (best is None or n > len(best)):
            best = phrase
    return (best, len(best)) if best else None


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
            num = tokens[i + used] if i + used < n else None
            symbol_after_number = phrase[0] in {"=", ">", "<", ">=", "<="} and i > 0 and tokens[i - 1].kind == "number"
            if num is not None and num.kind == "number" and not symbol_after_number:  # not "1=1"
                intent.comparisons.append(Comparison(op, num.value or 0.0, i, i + used + 1))
                intent.consumed.update(range(i, i + used + 1))
                i += used + 1
                continue
        if tokens[i].norm == "between" and i + 3 < n and tokens[i + 1].kind == "number" \
                and tokens[i + 2].norm == "and" and tokens[i + 3].kind == "number" \
                and not _looks_like_years(tokens[i + 1], tokens[i + 3]):
            low, high = tokens[i + 1].value or 0.0, tokens[i + 3].value or 0.0
            intent.comparisons.append(Comparison("between", low, i, i + 4, upper=high))
            intent.consumed.update(range(i, i + 4))
            i += 4
            continue
        if tokens[i].kind == "number" and _match(tokens, i + 1, {("or", "more"), ("or", "less"),
                                                                  ("or", "fewer"), ("plus",), ("+",)}):
            # "3 or more", "10+"
            phrase, used = _match(tokens, i + 1, {("or", "more"), ("or", "less"), ("or", "fewer"),
                                                   ("plus",), ("+",)})  # type: ignore[misc]
            op = "<=" if phrase[-1] in {"less", "fewer"} else ">="
            intent.comparisons.append(Comparison(op, tokens[i].value or 0.0, i, i + 1 + used))
            intent.consumed.update(range(i, i + 1 + used))
            i += 1 + used
            continue
        i += 1

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
            elif norm in {"most", "least", "fewest", "highest", "lowest", "best", "worst", "biggest",
                          "largest", "smallest"} and tokens[i - 1].norm in {"the", "our", "my", "their"} if i > 0 else False:
                # "which country has the most customers": superlative ranking, decided later
                intent.rank_superlative = i + 1
                intent.rank_dir = direction
                intent.consumed.update({i - 1, i})

    # 2. time (periods, grains, trend words)
    intent.time = extract_time(tokens, today, skip=set(intent.consumed))
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
        if norm in lx.SHARE_WORDS and norm != "breakdown" or (norm == "%" and i > 0):
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


def _looks_like_years(a: Token, b: Token) -> bool:
    return all(t.value is not None and t.value.is_integer() and 1900 <= t.value <= 2100 for t in (a, b))


def _ordering(intent: Intent) -> None:
    """How a listing is ordered: "sorted|ordered|arranged by X", "in descending|ascending
    order (of X)", "from highest to lowest", "alphabetically". The words are consumed, so
    "by" is not a breakdown and "highest" not a ranking; ``order_at`` points at the column."""
    n = len(intent.tokens)
    for i in range(n):
        if i in intent.consumed:
            continue
        norm = intent.norm(i)
        if norm in lx.ORDER_VERBS and intent.norm(i + 1) == "by" and intent.free(i + 2):
            intent.order_at = i + 2
            intent.consumed.update({i, i + 1})
        elif norm in lx.ORDER_DIRECTIONS:
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
