"""How sure the offline parser is of its answer: a score in 0..1 and the reasons it is not 1.

The parser always produces *some* query when it can link a word of the question to the
schema; what it cannot tell by itself is whether that query still means what was asked. This
module reads what the parse left behind and multiplies one factor per doubt:

* a word nobody understood (``ignored``) lowers it a lot; a word that *changes the meaning*
  ("never", "without", "not", "except", "only", "growth", "more than"...) and was not used
  lowers it sharply, since the answer is then probably the opposite of, or a different
  question from, what was asked;
* a negation the question holds but no filter applies ("customers who did not order");
* every spelling fix, every choice between several readings ("Took "x" to mean ..."),
  every default the user did not name (the measure, the time grain), every other reading
  offered, and every other assumption lowers it a little.

All factors are below 1, so the score is monotonic: one more doubt never raises it. It is a
ranking signal, not a probability; ``benchmarks/spider_open.py`` prints accuracy above and
below the threshold, which is how its calibration is checked. The agent asks the LLM (when one
is configured) and the answer card asks the user to check the assumptions when the score is
below ``llm_confidence_threshold``.

Pure and cheap: no I/O, a few set look-ups per word.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Iterable, Sequence

# -- words whose loss changes the question ----------------------------------------------------

#: A negation or exclusion: without it the answer is the complement of what was asked.
NEGATION_WORDS = frozenset({
    "not", "no", "never", "without", "except", "excluding", "exclude", "excludes", "excluded",
    "none", "neither", "nor", "non", "minus", "ignoring", "nobody", "nothing", "lack", "lacking",
    "missing", "absent", "didnt", "doesnt", "dont", "isnt", "arent", "wasnt", "werent", "havent",
    "hasnt", "cannot", "cant", "wont",
})
#: A restriction: harmless when the query filters on something, a loss when it does not.
RESTRICTION_WORDS = frozenset({"only", "just", "solely", "exclusively"})
#: Change, ratio, comparison and order words: each asks for a different computation.
COMPUTATION_WORDS = frozenset({
    "growth", "grow", "grew", "grown", "growing", "increase", "increased", "increases", "decrease",
    "decreased", "decline", "declined", "drop", "dropped", "change", "changed", "changes", "delta",
    "difference", "differ", "yoy", "mom", "ratio", "rate", "percent", "percentage", "share",
    "proportion", "fraction", "cumulative", "running", "rolling", "moving", "median", "average",
    "mean", "more", "less", "fewer", "greater", "smaller", "larger", "higher", "lower", "above",
    "below", "before", "after", "earlier", "later", "least", "most", "first", "last", "latest",
    "earliest", "newest", "oldest", "same", "both", "either", "twice", "again", "repeat",
    "returning", "new", "distinct", "unique", "per", "each", "every",
})
MEANING_WORDS = NEGATION_WORDS | RESTRICTION_WORDS | COMPUTATION_WORDS

# -- factors (one per doubt, multiplied) -----------------------------------------------------

MEANING_WORD_DROPPED = 0.3  # a word that changes the question, unused
NEGATION_UNAPPLIED = 0.35  # a negation the query does not apply
IGNORED_WORD = 0.55  # a content word nobody understood (alone: below the default threshold)
DROPPED_BY_PLANNER = 0.5  # "Ignored the condition on ...": understood, then left out
SPELLING_FIX = 0.85
READING_CHOSEN = 0.85  # one reading among several ("Took "x" to mean ...")
DEFAULT_MEASURE = 0.85  # the measure (or how to aggregate it) was not named
DEFAULT_GRAIN = 0.92  # the time grain was not named
OTHER_READINGS = 0.9  # alternatives were offered
ENGINE_SUBSTITUTE = 0.8  # the dialect lacks a function ("SQLite has no median")
FUZZY_MATCH = 0.9  # matched a value anywhere in a text column
OTHER_ASSUMPTION = 0.96
PERIOD_RESOLVED = 0.99  # "last year" -> dates: stated for the record, rarely wrong
REASONS_SHOWN = 5

# Assumption sentences the parser writes, by the kind of doubt they record (their opening words).
_ASSUMPTION_KINDS: tuple[tuple[re.Pattern[str], float, str], ...] = (
    (re.compile(r"^Ignored\b"), DROPPED_BY_PLANNER, "left out part of the question"),
    (re.compile(r'^Took ".*" to mean .* \(by [^()]+\)$'), PERIOD_RESOLVED, "resolved a period to dates"),
    (re.compile(r"^Took \""), READING_CHOSEN, "chose one reading of a word among several"),
    (re.compile(r"^(Used .* as the measure|Measured )"), DEFAULT_MEASURE, "picked the measure"),
    (re.compile(r"^Averaged \w.* \(it does not add up"), DEFAULT_MEASURE, "picked the aggregation"),
    (re.compile(r"\bhas no \w+: used\b"), ENGINE_SUBSTITUTE, "the database lacks a function"),
    (re.compile(r"^Matched .* anywhere\b"), FUZZY_MATCH, "matched text loosely"),
)


@dataclasses.dataclass(frozen=True)
class Confidence:
    score: float  # 0..1, rounded to two decimals
    reasons: list[str]  # the biggest doubts first, at most REASONS_SHOWN

    def is_low(self, threshold: float) -> bool:
        return self.score < threshold


@dataclasses.dataclass
class Evidence:
    """What a parse left behind, in plain data (what :func:`assess` reads).

    Attributes:
        unused: normalized words of the question nothing used (intent or schema link), stop
            words included: a stop word can still change the meaning ("only", "not").
        ignored: words reported as not understood (content words, as typed).
        fixes: spelling corrections ``(typed, meant)`` that were kept.
        assumptions: the planner's and the dialect's assumption sentences.
        alternatives: how many other readings were offered.
        negations: negation words the question holds (used by the intent or not).
        negation_applied: the query has a negative filter (``!=``, ``NOT IN``, ``NOT EXISTS``) or
            left values out.
        filtered: the query restricts rows (a filter, a HAVING, a limit).
        default_grain: the query buckets time by a grain the question did not name.
    """

    unused: list[str] = dataclasses.field(default_factory=list)
    ignored: list[str] = dataclasses.field(default_factory=list)
    fixes: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    assumptions: list[str] = dataclasses.field(default_factory=list)
    alternatives: int = 0
    negations: list[str] = dataclasses.field(default_factory=list)
    negation_applied: bool = False
    filtered: bool = False
    default_grain: bool = False


def assess(evidence: Evidence) -> Confidence:
    """The confidence of a parse and the reasons, biggest doubt first."""
    doubts: list[tuple[float, str]] = []
    ignored = {w.lower() for w in evidence.ignored}
    for word in dict.fromkeys(w.lower() for w in evidence.unused):
        if word in RESTRICTION_WORDS and evidence.filtered:
            continue
        if word in MEANING_WORDS:
            doubts.append((MEANING_WORD_DROPPED, f'did not use "{word}", which changes the question'))
            ignored.discard(word)
    for word in evidence.ignored:
        if word.lower() in ignored:
            ignored.discard(word.lower())
            doubts.append((IGNORED_WORD, f'did not understand "{word}"'))
    if evidence.negations and not evidence.negation_applied:
        words = " ".join(dict.fromkeys(evidence.negations))
        doubts.append((NEGATION_UNAPPLIED, f'the question says "{words}" but the query excludes nothing'))
    for typed, meant in evidence.fixes:
        doubts.append((SPELLING_FIX, f'read "{typed}" as "{meant}"'))
    for sentence in dict.fromkeys(evidence.assumptions):
        factor, _ = assumption_kind(sentence)
        doubts.append((factor, sentence[:1].lower() + sentence[1:]))
    if evidence.default_grain:
        doubts.append((DEFAULT_GRAIN, "picked the time grain"))
    if evidence.alternatives:
        doubts.append((OTHER_READINGS, "the question can be read in other ways"))
    return combine(doubts)


def combine(doubts: Iterable[tuple[float, str]]) -> Confidence:
    """Multiply the factors; the reasons are ordered by factor (smallest, i.e. worst, first)."""
    score = 1.0
    ranked = sorted(doubts, key=lambda d: d[0])
    for factor, _ in ranked:
        score *= max(0.0, min(1.0, factor))
    return Confidence(round(score, 2), [reason for _, reason in ranked[:REASONS_SHOWN]])


def assumption_kind(sentence: str) -> tuple[float, str]:
    """The factor of one assumption sentence and the kind of doubt it records."""
    for pattern, factor, kind in _ASSUMPTION_KINDS:
        if pattern.search(sentence):
            return factor, kind
    return OTHER_ASSUMPTION, "assumed something"


def of_parse(tokens: Sequence, intent, mentions: Sequence, unknown_at: Sequence[int],
             fixes: Sequence[tuple[str, str]], assumptions: Sequence[str], alternatives: Sequence[str],
             spec) -> Confidence:
    """:func:`assess` on the parser's own objects (tokens, intent, mentions, plan, spec)."""
    covered = set(intent.consumed)
    for m in mentions:
        covered.update(range(m.start, m.end))
    words = [(i, t) for i, t in enumerate(tokens) if t.kind == "word"]
    filters = list(spec.filters) + [f for e in spec.exists for f in e.filters]
    negative = any(f.op in {"!=", "not_in", "not_like", "is_null"} for f in filters) \
        or any(e.negated for e in spec.exists) or any(a.startswith("Left out") for a in assumptions)
    return assess(Evidence(
        unused=[t.norm for i, t in words if i not in covered],
        ignored=[tokens[i].text for i in unknown_at],
        fixes=list(fixes),
        assumptions=list(assumptions),
        alternatives=len(alternatives),
        negations=[tokens[i].norm for i in sorted(intent.negations) if tokens[i].norm in NEGATION_WORDS],
        negation_applied=negative,
        filtered=bool(spec.filters or spec.exists or spec.having or spec.limit),
        default_grain=bool(spec.time_grain) and not intent.time.grain,
    ))
