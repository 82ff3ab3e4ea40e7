"""Conditions spelled out in words: string conditions ("starts with Apex", "contains the letter
w", "with Restaurant in their company name", "whose name has the word computer", "the section
named h") and numbers next to a column the rest of the parser left free ("in grade 10",
"under age 30", "3 years old").

Found on the tokens after intent extraction and before schema linking (:func:`find`): the
verb, the text and the column words are consumed, so the text is never linked to the schema
nor reported as ignored. Once the base table and the subject are known, :func:`apply` turns
each condition into a ``LIKE`` on the column the question names ("in their company name",
"city whose name ..."), else on the label column of the thing the question is about.

The grammar is English only; which column is meant comes from the semantic model. A weak verb
("has", "with", "contains") counts only when something says it is about text: the kind of text
("the letter", "the word"), a quoted text, "in their <column>", or a text column just before it
("whose name contains ...") - so "orders with discount" or "products that have a category" are
left to the rest of the parser.
"""

from __future__ import annotations

import dataclasses

from . import lexicon as lx
from .model import SemanticModel
from .normalize import Token, tokenize

#: SQL LIKE wildcards are dropped from the user's text (they would match more than typed)
_WILDCARDS = str.maketrans("", "", "%_")
_CHARACTER_WORDS = {"letter", "letters", "character", "characters", "substring", "prefix", "suffix"}
_NEGATORS = {"not", "doesnt", "dont", "didnt", "isnt", "arent", "never", "no"}


@dataclasses.dataclass
class TextCondition:
    """A condition on the text of a column; spans are token ranges ``(start, end)``."""

    mode: str  # prefix | suffix | contains | equals
    text: str
    start: int
    end: int
    column_at: tuple[int, int] | None = None  # the words naming the column ("company name")
    owner_at: tuple[int, int] | None = None  # "city" in "city whose name begins with ..."
    negated: bool = False
    numbers: tuple[float, ...] = ()  # mode "number": "in grade 10", "aged 32 or 33"
    op: str = "="  # mode "number": "older than 3" is ">"

    @property
    def pattern(self) -> str:
        text = self.text.translate(_WILDCARDS).lower()
        return {"prefix": f"{text}%", "suffix": f"%{text}", "contains": f"%{text}%"}.get(self.mode, text)

    @property
    def label(self) -> str:
        if self.mode == "number":
            return f"{self.op if self.op != '=' else 'is'} " + " or ".join(f"{v:g}" for v in self.numbers)
        verb = {"prefix": "starts with", "suffix": "ends with", "contains": "contains", "equals": "is"}[self.mode]
        return ("not " if self.negated else "") + f"{verb} '{self.text}'"


def find(tokens: list[Token], consumed: set[int], model: SemanticModel) -> list[TextCondition]:
    """String conditions among the free tokens; their tokens are added to ``consumed``.

    Spelling corrections of the consumed text are undone (a name is not a typo)."""
    found: list[TextCondition] = []
    n = len(tokens)
    i = 0
    while i < n:
        cond = None if i in consumed else (_naming(tokens, i, consumed, model) or _verb(tokens, i, consumed, model)
                                           or _number(tokens, i, consumed, model))
        if cond is None:
            i += 1
            continue
        found.append(cond)
        column = set(range(*cond.column_at)) if cond.column_at else set()
        consumed.update(column)
        for k in range(cond.start, cond.end):
            consumed.add(k)
            tok = tokens[k]
            if tok.corrected_from is not None and k not in column:
                tok.norm, tok.corrected_from = tok.corrected_from, None  # the text as typed
        i = cond.end
    return found


def _value(tokens: list[Token], j: int, consumed: set[int]) -> tuple[str, int] | None:
    """The text at ``j``: a quoted text, a run of capitalized words, or one word/number."""
    if j >= len(tokens) or j in consumed:
        return None
    tok = tokens[j]
    if tok.kind == "quoted":
        return tok.text[1:-1].strip(), j + 1
    if tok.kind not in {"word", "number"} or tok.norm in lx.STOPWORDS and not tok.text[:1].isupper():
        return None
    end = j + 1
    if tok.text[:1].isupper():
        while end < len(tokens) and end not in consumed and tokens[end].kind == "word" \
                and tokens[end].text[:1].isupper() and tokens[end].start > tokens[end - 1].start:
            end += 1
    text = " ".join(t.text for t in _distinct(tokens[j:end]))
    return text, end


def _typed(tok: Token) -> str:
    """The word as typed (normalized), before any spelling correction ("word" is no typo)."""
    return tok.corrected_from or tok.norm


def _distinct(tokens: list[Token]) -> list[Token]:
    """Tokens of distinct source words (a hyphenated word is split into several tokens)."""
    out: list[Token] = []
    for tok in tokens:
        if not out or tok.start != out[-1].start:
            out.append(tok)
    return out


def _column_span(tokens: list[Token], start: int, model: SemanticModel, *, backward: bool = False
                 ) -> tuple[int, int] | None:
    """The longest phrase naming a text column that starts (or, ``backward``, ends) at ``start``."""
    for size in (3, 2, 1):
        lo, hi = (start - size, start) if backward else (start, start + size)
        if lo < 0 or hi > len(tokens):
            continue
        phrase = tuple(t.norm for t in tokens[lo:hi])
        if _text_columns(phrase, model):
            return lo, hi
    return None


def _text_columns(phrase: tuple[str, ...], model: SemanticModel):
    links = model.phrases.get(phrase) or model.phrases.get(phrase[:-1] + (lx.singular(phrase[-1]),)) or []
    return [lk for lk in links if lk.kind == "column" and lk.column
            and model.column(lk.table, lk.column).kind == "text"]


def _naming(tokens: list[Token], i: int, consumed: set[int], model: SemanticModel) -> TextCondition | None:
    """"named X", "called X": X is the name of the row (equality), unless the value index
    already knows X (then the linker links it to its column)."""
    column_at = None
    j = i + 1
    if tokens[i].norm in {"name", "title"} and i > 0 and tokens[i - 1].norm in {"whose", "with", "the"}:
        # "whose name is Zenith Press", "with the name Zenith Press": only a capitalized name
        column_at = (i, i + 1)
        if j < len(tokens) and tokens[j].norm in {"is", "of", "="}:
            j += 1
        if j >= len(tokens) or not tokens[j].text[:1].isupper() or tokens[j].kind != "word":
            return None
    elif tokens[i].norm not in lx.NAMING_VERBS:
        return None
    found = _value(tokens, j, consumed)
    if found is None:
        return None
    text, end = found
    if tokens[j].kind == "quoted" or _known_value(tokens, j, end, model):
        return None  # the linker links a known value or a quoted literal
    return TextCondition("equals", text, i, end, column_at=column_at)


def _known_value(tokens: list[Token], start: int, end: int, model: SemanticModel) -> bool:
    """Whether a value of the value index starts within ``start..end`` ("Data base" is known
    though only "Data" is capitalized)."""
    for lo in range(start, end):
        for hi in range(min(len(tokens), lo + model.max_phrase_len), lo, -1):
            phrase = tuple(t.norm for t in tokens[lo:hi])
            if any(lk.kind == "value" for lk in model.phrases.get(phrase, ())):
                return True
    return False


def _quoted_value(tok: Token, model: SemanticModel) -> bool:
    """A quoted text that is a whole value of the index: the linker makes it an equality."""
    words = tuple(t.norm for t in tokenize(tok.norm))
    return any(lk.kind == "value" for lk in model.phrases.get(words, ()))


def _verb(tokens: list[Token], i: int, consumed: set[int], model: SemanticModel) -> TextCondition | None:
    """"starts with X", "contains the letter x", "has X in their name", "whose name does not
    contain X", "names without the letter e" (see the module docstring for weak verbs)."""
    n = len(tokens)
    negated = False
    if tokens[i].norm == "without":  # "names without the letter e"
        verb, used, negated = "contains", 1, True
    else:
        match = None
        first = _typed(tokens[i])
        for phrase, mode in lx.STRING_VERBS.items():
            if phrase[0] != first:
                continue  # most tokens start no verb: skip the slice
            if tuple(_typed(t) for t in tokens[i:i + len(phrase)]) == phrase and (match is None or len(phrase) > match[1]):
                match = (mode, len(phrase))
        if match is None:
            return None
        verb, used = match
    weak = tokens[i].norm in lx.WEAK_STRING_VERBS or tokens[i].norm == "without"
    j = i + used
    if j < n and tokens[j].norm in {"the", "a", "an"} and j + 1 < n and _typed(tokens[j + 1]) in lx.STRING_KIND_WORDS:
        j += 1
    kind_word = j < n and _typed(tokens[j]) in lx.STRING_KIND_WORDS and j + 1 < n
    if kind_word:
        j += 1
    found = _value(tokens, j, consumed)
    if found is None:
        return None
    text, end = found
    quoted = tokens[j].kind == "quoted"
    if quoted and _quoted_value(tokens[j], model) and _typed(tokens[j - 1]) not in _CHARACTER_WORDS:
        return None  # "with text 'Korea'": the whole value, an equality the linker makes
    column_at = None
    if end + 1 < n and tokens[end].norm == "in" and tokens[end + 1].norm in {"it", "them"}:
        end += 2
    elif end + 1 < n and tokens[end].norm == "in" and tokens[end + 1].norm in lx.POSSESSIVES:
        column_at = _column_span(tokens, end + 2, model)  # "with X in their company name"
        if column_at is not None:
            end = column_at[1]
    # the column named before the verb: "whose name starts with", "description with the letter"
    k = i
    while k > 0 and tokens[k - 1].norm in _NEGATORS | {"does", "do", "did", "is", "are", "which", "that"}:
        k -= 1
        negated = negated or tokens[k].norm in _NEGATORS
    before = _column_span(tokens, k, model, backward=True) if column_at is None else None
    owner_at = None
    if before is not None:
        whose = before[0] - 1
        generic = {t.norm for t in tokens[before[0]:before[1]]} <= {"name", "names", "title", "titles"}
        if whose >= 0 and tokens[whose].norm == "whose" and generic:
            owner_at = _owner_span(tokens, whose, model)
    strong = kind_word or quoted or column_at is not None \
        or (before is not None and (tokens[i].norm.startswith(("contain", "include")) or owner_at is not None
                                    or (before[0] > 0 and tokens[before[0] - 1].norm == "whose")))
    if weak and not strong:
        return None
    if before is not None and column_at is None:
        column_at = before
    start = min(i, k)
    return TextCondition(verb, text, start, end, column_at, owner_at, negated)


_NUMBER_GLUE = {"or", "and", "either", "to"}


def _number(tokens: list[Token], i: int, consumed: set[int], model: SemanticModel) -> TextCondition | None:
    """"in grade 10", "whose membership level is 1", "aged 32 or 33", "3 years old": a
    column named next to whole numbers the rest of the question left free is equal to one of
    them (comparisons, rankings and years were taken by intent extraction)."""
    tok = tokens[i]
    if tok.kind != "number" or tok.value is None or not tok.value.is_integer():
        return None
    numbers, end = [tok.value], i + 1
    while end + 1 < len(tokens) and tokens[end].norm in {"or", "and"} and tokens[end + 1].kind == "number" \
            and end + 1 not in consumed and tokens[end + 1].value is not None:
        numbers.append(tokens[end + 1].value)
        end += 2
    k = i
    while k > 0 and k - 1 not in consumed and tokens[k - 1].norm in {"is", "of", "=", "either", "equal", "exactly"}:
        k -= 1
    span = _named_column(tokens, k, consumed, model)
    if span is None:
        return None
    start, op = _comparator_before(tokens, span[0], consumed, len(numbers))
    return TextCondition("number", "", min(start, k), end, column_at=span, numbers=tuple(numbers), op=op)


def _comparator_before(tokens: list[Token], at: int, consumed: set[int], count: int) -> tuple[int, str]:
    """"under age 30": a comparison word before the column applies to the number after it."""
    for phrase, op in lx.COMPARATORS.items():
        lo = at - len(phrase)
        if lo >= 0 and count == 1 and tuple(t.norm for t in tokens[lo:at]) == phrase \
                and not any(j in consumed for j in range(lo, at)):
            return lo, op
    return at, "="


def _named_column(tokens: list[Token], end: int, consumed: set[int], model: SemanticModel) -> tuple[int, int] | None:
    """The phrase ending at ``end`` whose best meaning is a column that is no key."""
    for size in (3, 2, 1):
        lo = end - size
        if lo < 0 or any(k in consumed for k in range(lo, end)):
            continue
        phrase = tuple(t.norm for t in tokens[lo:end])
        links = model.phrases.get(phrase) or model.phrases.get(phrase[:-1] + (lx.singular(phrase[-1]),)) or []
        if links and max(links, key=lambda lk: lk.score).kind == "column" and any(
                lk.kind == "column" and model.column(lk.table, lk.column).role not in {"key", "hidden"}  # type: ignore[arg-type]
                for lk in links):
            return lo, end
    return None


def _owner_span(tokens: list[Token], whose: int, model: SemanticModel) -> tuple[int, int] | None:
    """The table or text column named just before "whose" ("city whose name ...")."""
    for size in (3, 2, 1):
        lo = whose - size
        if lo < 0:
            continue
        phrase = tuple(t.norm for t in tokens[lo:whose])
        links = model.phrases.get(phrase) or model.phrases.get(phrase[:-1] + (lx.singular(phrase[-1]),)) or []
        if any(lk.kind in {"table", "column"} for lk in links):
            return lo, whose
    return None


def apply(p, spec, conditions: list[TextCondition], subject: str | None) -> None:
    """Add a filter per condition to ``spec`` (a :class:`~.query.QuerySpec` being composed by
    the planner ``p``): on the named column when one is named, else on the label of the subject
    (or of the base table). A condition no reachable column can hold becomes an assumption."""
    from .query import FilterSpec  # query builds on model, as this module does

    model = p.model
    target = subject or spec.base
    for cond in conditions:
        if cond.mode == "number":
            _number_filter(p, spec, target, cond, FilterSpec)
            continue
        where = _condition_column(p, spec.base, target, cond)
        if where is None:
            p.assumptions.append(f"Ignored the condition {cond.label}: no text column to apply it to")
            continue
        table, column = where
        op = "not_matches" if cond.negated else "matches"
        spec.filters.append(FilterSpec(table, column, op, [cond.pattern], label=cond.label))
        p.assumptions.append(f"Matched {model.column(table, column).human} of {model.tables[table].plural} "
                             f"that {cond.label} (ignoring case)")


def _condition_column(p, base: str, target: str, cond: TextCondition) -> tuple[str, str] | None:
    model = p.model
    tokens = p.intent.tokens

    def reachable(table: str) -> bool:
        return p.reach(base, table) is not None

    def label_of(table: str) -> tuple[str, str] | None:
        label = model.tables[table].label_column
        if label and reachable(table):
            return table, label
        named = [c for c in model.tables[table].columns.values()
                 if c.kind == "text" and c.role == "dimension" and {"name", "title"} & set(c.words)]
        return (table, named[0].name) if named and reachable(table) else None

    if cond.owner_at is not None:  # "city whose name ...": the city; "products whose name": their label
        phrase = tuple(t.norm for t in tokens[cond.owner_at[0]:cond.owner_at[1]])
        owned = [lk for lk in _text_columns(phrase, model) if reachable(lk.table)]
        if owned:
            owned.sort(key=lambda lk: (lk.table != target, -lk.score))
            return owned[0].table, owned[0].column  # type: ignore[return-value]
    if cond.column_at is not None:
        phrase = tuple(t.norm for t in tokens[cond.column_at[0]:cond.column_at[1]])
        links = [lk for lk in _text_columns(phrase, model) if reachable(lk.table)]
        links.sort(key=lambda lk: (lk.table != target, -lk.score))
        generic = set(phrase) <= {"name", "names", "title", "titles"}
        if generic and (not links or links[0].table != target):
            own = label_of(target)
            if own is not None:
                return own
        if links:
            return links[0].table, links[0].column  # type: ignore[return-value]
    return label_of(target)


def _number_filter(p, spec, target: str, cond: TextCondition, filter_spec) -> None:
    """``column = n`` (or ``IN``) on the named column, numbers as stored: text columns holding
    digits ("Age" as TEXT) compare with the digits."""
    model = p.model
    assert cond.column_at is not None  # a number condition always names its column
    phrase = tuple(t.norm for t in p.intent.tokens[cond.column_at[0]:cond.column_at[1]])
    links = model.phrases.get(phrase) or model.phrases.get(phrase[:-1] + (lx.singular(phrase[-1]),)) or []
    options = [(lk.table, lk.column) for lk in sorted(links, key=lambda lk: -lk.score) if lk.kind == "column"
               and model.column(lk.table, lk.column).role not in {"key", "hidden"}  # type: ignore[arg-type]
               and p.reach(spec.base, lk.table) is not None]
    if not options:
        p.assumptions.append(f"Ignored the condition {cond.label}: no column to apply it to")
        return
    options.sort(key=lambda tc: tc[0] != target)  # stable: the best link first within the target
    table, column = options[0]
    info = model.column(table, column)
    values = [v if info.kind == "number" else f"{v:g}" for v in cond.numbers]
    op = cond.op if len(values) == 1 else "in"
    spec.filters.append(filter_spec(table, column, op, values, label=info.human))
    p.assumptions.append(f"Took {info.human} {cond.label}")
