"""Existence: rows that have (or lack) related rows in another table.

"students who do not have any friends", "templates not used by any document", "courses that
have some students enrolled", "tv channels that do not play any cartoon directed by Ben Jones":
the thing listed or counted is one entity; another entity, reachable from it by a chain of
foreign keys pointing *at* it (its children, or their children), must exist or must not.
That is a correlated ``[NOT] EXISTS`` on the outer table, never a join (a join would repeat
the outer rows, and an anti-join cannot be written as one).

Two steps, each pure:

* :func:`existence_of` (used by the planner while it gives mentions their roles) decides from
  the words before an entity mention whether it is such a condition: a negation ("no",
  "not", "never", "without", "don't"...) or a quantifier ("any", "some", "at least one"), or
  "have/has/with" right before it, with only auxiliaries, prepositions and verbs in between;
* :func:`exists_specs` (used by :mod:`.compose`) resolves each such mention against the
  query's tables: the related table, the outer table it points at, the key path between them,
  and the value filters said after it that belong to the related rows ("cartoon directed by
  Ben Jones" filters cartoons, inside the EXISTS).
"""

from __future__ import annotations

from .query import ExistsSpec, FilterSpec

#: words that negate an existence; contractions arrive without their apostrophe ("dont")
ABSENCE_WORDS = {"no", "never", "none", "not", "without", "dont", "doesnt", "didnt", "havent", "hasnt",
                 "hadnt", "isnt", "arent", "wasnt", "werent", "cannot", "cant", "wont", "nobody", "nothing"}
#: quantifiers that say "at least one related row"
PRESENCE_WORDS = {"any", "some", "ever"}
#: possession verbs: "students who have friends", "departments with degrees"
HAVE_WORDS = {"have", "has", "had", "having", "own", "owns"}
_STOPS = {"and", "or", "but", ",", "which", "what", "who", "whose", "how", "where", "when", "than"}
#: words that may stand between the negation or verb and the related entity
_GAP_WORDS = {"a", "an", "the", "any", "some", "single", "one", "do", "does", "did", "have", "has", "had",
              "having", "is", "are", "was", "were", "been", "be", "being", "by", "in", "into", "to", "for",
              "of", "on", "at", "from", "with", "ever", "yet", "that", "who", "which", "currently", "also",
              "got", "get", "their", "its", "his", "her", "even"}
_MAX_GAP = 5  # tokens scanned back from the related entity


def existence_of(norms: list[str], start: int, mention_starts: set[int], negations: set[int]) -> bool | None:
    """Whether the entity mention at token ``start`` is an existence condition, and which:
    ``False`` (rows with it: "who have friends"), ``True`` (rows without it: "with no
    friends"), or ``None`` (not an existence condition: a plain noun of the question).

    ``norms`` are the question's normalized words, ``mention_starts`` the token indexes where
    other mentions begin (a scan never crosses another mention), ``negations`` the indexes of
    negation words found by intent extraction.
    """
    negated = False
    quantified = False
    verb = False
    k = start - 1
    steps = 0
    while k >= 0 and steps < _MAX_GAP:
        word = norms[k]
        if k in mention_starts:
            break
        if k in negations or word in ABSENCE_WORDS:
            negated = True
            break
        if word in _STOPS or not (word.isalpha() or word in _GAP_WORDS):
            break
        if word in PRESENCE_WORDS:
            quantified = True
        elif word in HAVE_WORDS and k == start - 1 - _skipped_determiners(norms, start):
            verb = True
        k -= 1
        steps += 1
    if negated:
        return True
    if quantified or verb:
        return False
    return None


def _skipped_determiners(norms: list[str], start: int) -> int:
    """How many determiners/quantifiers stand right before the mention ("have any friends": 1)."""
    k = start - 1
    n = 0
    while k >= 0 and norms[k] in {"a", "an", "the", "any", "some", "their", "its", "his", "her"}:
        k -= 1
        n += 1
    return n


def exists_specs(model, related_roles, filter_roles, tables_in_query: list[str],
                 tokens: list[str] | None = None) -> tuple[list[ExistsSpec], set[int]]:
    """The EXISTS conditions for the ``related_roles`` ("exists" roles of the planner), and the
    ids of the filter roles they took (their values filter the related rows).

    ``tables_in_query`` are the outer query's tables, base first; the related table must point
    at one of them by a many-to-one key path (the first that it reaches wins). A related
    mention that reaches none is left out (the caller says so).
    """
    out: list[ExistsSpec] = []
    taken: set[int] = set()
    words = {k: w for r in [*related_roles, *filter_roles] for k, w in zip(range(r.mention.start, r.mention.end),
                                                                           r.mention.norm.split())}

    def norms_between(start: int, end: int) -> list[str]:
        return [tokens[k] for k in range(start, end)] if tokens else [words.get(k, "?") for k in range(start, end)]

    for role in related_roles:
        related = next(lk.table for lk in role.mention.links if lk.kind == "table")
        found = route(model, related, tables_in_query)
        if found is None:
            continue
        table, outer, path = found
        paths = model.paths_from(table)
        inner_filters: list[FilterSpec] = []
        for f in filter_roles:
            # the values said with the related noun: "cartoons directed by Ben Jones" (after it),
            # "a cat pet" (right before it)
            adjacent = f.mention.end <= role.mention.start and all(
                w in {"a", "an", "the", "any", "some", "as"} for w in norms_between(f.mention.end, role.mention.start))
            if id(f) in taken or (f.mention.start < role.mention.end and not adjacent):
                continue
            link = next((lk for lk in f.mention.links if lk.kind == "value" and lk.table in paths
                         and lk.table != outer and (lk.table == table or lk.table not in tables_in_query)), None)
            if link is None:
                continue
            # "never returned an order": the negation belongs to the existence, not the value
            op = "!=" if f.negated and not role.negated else "="
            inner_filters.append(FilterSpec(link.table, link.column, op, [link.value],  # type: ignore[arg-type]
                                            label=model.column(link.table, link.column).human))  # type: ignore[arg-type]
            taken.add(id(f))
        info = model.tables[related]
        if table == related and outer in paths:
            path = _path(model, table, outer, paths, role)
        out.append(ExistsSpec(table=table, negated=role.negated, outer=outer, path=path,
                              filters=inner_filters, label=info.plural))
    return out, taken


def route(model, related: str, tables: list[str]) -> tuple[str, str, list] | None:
    """How rows of ``related`` reach a row of the query: ``(table the subquery reads, outer
    table it correlates with, key path between them)``. Directly when ``related`` points at
    one of ``tables`` (its children: a pupil's friends); else through a bridge table that
    points at both ("students who have a cat": ``has_pet`` points at ``student`` and at
    ``pets``; "shops that hire no employee": ``hiring``), the shortest such bridge."""
    paths = model.paths_from(related)
    outer = next((t for t in tables if t != related and t in paths), None)
    if outer is not None:
        return related, outer, list(paths[outer])
    for t in tables:  # the query's rows point at it: "owners' rows in owns have an animal"
        direct = next((e for e in model.parents(t) if e.parent == related), None)
        if direct is not None and t != related:
            return related, t, [(direct, False)]
    best = None
    for bridge in model.tables:
        if bridge == related or bridge in tables:
            continue
        reach = model.paths_from(bridge)
        if related not in reach:
            continue
        for t in tables:
            if t in reach and t != related:
                cost = len(reach[t]) + len(reach[related])
                if best is None or cost < best[0]:
                    best = (cost, bridge, t, list(reach[t]))
                break
    if best is None:
        return None
    _, bridge, outer, path = best
    return bridge, outer, path


def _path(model, table: str, outer: str, paths, role) -> list:
    """The key path from the related table to the outer one. When the related table points
    at the outer one by several keys (``friend(student_id, friend_id)`` -> ``student``), the
    rows belong to the outer row through the key that does *not* repeat the related noun:
    "students with friends" are the ``student_id`` side, ``friend_id`` names the friend."""
    direct = [e for e in model.parents(table) if e.parent == outer]
    if len(direct) < 2:
        return list(paths[outer])
    said = {w.rstrip("s") for w in role.mention.norm.split()}

    def echoes(edge) -> bool:
        return any(part.rstrip("s") in said for c in edge.child_cols for part in c.lower().replace("_", " ").split())

    owner = next((e for e in direct if not echoes(e)), direct[0])
    return [(owner, True)]
