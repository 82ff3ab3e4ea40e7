"""The offline NLP engine on schemas and questions nobody on this project wrote (not a test).

    .venv/bin/python benchmarks/spider_open.py                      # every question, summary
    .venv/bin/python benchmarks/spider_open.py --failures           # + each failure with both SQL
    .venv/bin/python benchmarks/spider_open.py --db pets_1,tvshow --json spider.json
    .venv/bin/python benchmarks/nlp_accuracy.py --spider-open ...   # the same, through nlp_accuracy

Every question of ``../shared/data/spider-open/questions.json`` (``[{"db", "question", "sql"}]``,
nine SQLite databases) is answered the way a server answers it: the warehouse is opened through
livebi's own SQLite connector with the server's options (:func:`livebi.services.warehouse_options`),
the agent is the one :func:`livebi.services.build_nlp_agent` builds from default settings with no
LLM (``llm_base_url=""``, the real date, no semantic layer), its semantic model is built from the
schema as for any new warehouse, and :meth:`NLPAgent.answer` is awaited. Its SQL is validated
as the product validates it, then it and the gold SQL run on a read-only ``sqlite3`` connection
to the same file (each statement stopped after ``--timeout`` seconds).

**Execution match** (``matching.py``): every gold column must be found among the answer's
columns, and those columns must give the gold rows as a multiset (extra columns and column order
are forgiven; duplicates count); row order counts only when the gold SQL has a top-level ORDER
BY; numbers are compared to 6 significant digits. A refusal ("not understood"), an answer the
validation refuses and an answer that fails to run are all wrong.

**Classes** come from the gold SQL parsed with sqlglot. The *shape* is one of ``simple`` (no
JOIN, no nested SELECT, no set operation), ``join`` (a JOIN, no nesting or set operation),
``nested`` (a SELECT inside another: subquery, IN (SELECT ...), CTE) and ``set_op`` (UNION,
INTERSECT, EXCEPT), the first that applies from the last. Independently, what the gold SQL
*needs*: ``aggregation``, ``group_by``, ``having``, ``order_limit`` (ORDER BY with LIMIT),
``negation`` (NOT IN, NOT EXISTS, EXCEPT), ``like`` and ``distinct``; a question can have several.

Prints accuracy overall, per database, per shape and per need, how the wrong answers failed, and
the latency of ``NLPAgent.answer`` (p50, p95, max; the NLP stage as the server runs it, so it
includes the hop to a worker thread).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import json
import sqlite3
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from matching import norm_rows, same_result  # noqa: E402

from livebi.agents.nlp import NotUnderstood  # noqa: E402
from livebi.config import Settings  # noqa: E402
from livebi.services import build_nlp_agent, warehouse_options  # noqa: E402
from livebi.warehouse.registry import open_warehouse  # noqa: E402
from livebi.warehouse.safety import UnsafeSQL, validate_select  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "spider-open"
SHAPES = ("simple", "join", "nested", "set_op")
NEEDS = ("aggregation", "group_by", "having", "order_limit", "negation", "like", "distinct")


# -- classes of gold SQL ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GoldClass:
    shape: str  # one of SHAPES
    needs: tuple[str, ...]  # a subset of NEEDS, in NEEDS order
    ordered: bool  # a top-level ORDER BY: row order counts


def classify(sql: str) -> GoldClass:
    """The shape, needs and ordering of a gold statement (see the module docstring)."""
    tree = sqlglot.parse_one(sql, read="sqlite")
    selects = list(tree.find_all(exp.Select))
    if any(tree.find_all(exp.SetOperation)):
        shape = "set_op"
    elif any(s.find_ancestor(exp.Select) is not None for s in selects):
        shape = "nested"
    elif any(tree.find_all(exp.Join)):
        shape = "join"
    else:
        shape = "simple"
    found = {
        "aggregation": any(tree.find_all(exp.AggFunc)),
        "group_by": any(tree.find_all(exp.Group)),
        "having": any(tree.find_all(exp.Having)),
        "order_limit": any(q.args.get("order") and q.args.get("limit")
                           for q in (*selects, *tree.find_all(exp.SetOperation))),
        "negation": any(tree.find_all(exp.Except))
        or any(isinstance(n.this, (exp.In, exp.Exists)) for n in tree.find_all(exp.Not)),
        "like": any(tree.find_all(exp.Like, exp.ILike)),
        "distinct": any(tree.find_all(exp.Distinct)),
    }
    return GoldClass(shape, tuple(n for n in NEEDS if found[n]), bool(tree.args.get("order")))


# -- running ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    db: str
    question: str
    gold: str
    shape: str
    needs: tuple[str, ...]
    ok: bool
    kind: str  # right | wrong | not_understood | refused | sql_error | crash
    why: str = ""
    sql: str = ""
    ms: float = 0.0
    confidence: float | None = None  # the parser's, when it answered


def run_sql(con: sqlite3.Connection, sql: str, timeout_s: float) -> list[tuple]:
    """All rows of ``sql``, normalised; stopped (sqlite3.OperationalError) after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    con.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    try:
        return norm_rows(con.execute(sql).fetchall())
    finally:
        con.set_progress_handler(None, 0)


async def run_database(db: str, items: list[dict], data_dir: Path, timeout_s: float) -> list[Outcome]:
    """Answer every question of ``db`` with a fresh agent, as a server would; judge each."""
    path = data_dir / f"{db}.sqlite"
    settings = Settings(llm_base_url="", semantic_layers={}, today=None)
    agent = build_nlp_agent(settings)
    wh = open_warehouse(db, f"sqlite:///{path.resolve()}", **warehouse_options(settings, db))
    outcomes = []
    try:
        model = await agent.model_for(wh)
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
            con.text_factory = lambda b: b.decode("utf-8", errors="replace")
            for item in items:
                outcomes.append(await _judge(agent, model, wh, con, db, item, timeout_s))
    finally:
        await wh.close()
    return outcomes


async def _judge(agent, model, wh, con, db: str, item: dict, timeout_s: float) -> Outcome:
    question, gold = item["question"], item["sql"]
    cls = classify(gold)
    out = Outcome(db, question, gold, cls.shape, cls.needs, False, "wrong")
    try:
        want = run_sql(con, gold, timeout_s)
    except sqlite3.Error as exc:  # the data set promises runnable gold SQL: stop loudly
        raise SystemExit(f"gold SQL fails on {db} for {question!r}: {exc}\n{gold}") from None
    started = time.perf_counter()
    try:
        parsed = await agent.answer(question, model, wh)
    except NotUnderstood as exc:
        out.ms = (time.perf_counter() - started) * 1000
        out.kind, out.why = "not_understood", f"not understood: {exc.message}"
        return out
    except Exception as exc:  # a parser bug: counted and shown with its traceback, never hidden
        out.ms = (time.perf_counter() - started) * 1000
        out.kind, out.why = "crash", f"parser crash: {exc!r}\n{traceback.format_exc()}"
        return out
    out.ms = (time.perf_counter() - started) * 1000
    out.sql = parsed.sql
    out.confidence = parsed.confidence
    try:  # the product validates every statement before it runs: so does the benchmark
        sql = validate_select(parsed.sql, dialect="sqlite", schema=model.schema)
    except UnsafeSQL as exc:
        out.kind, out.why = "refused", f"refused by validation: {exc.code} {exc.message}"
        return out
    try:
        got = run_sql(con, sql, timeout_s)
    except sqlite3.Error as exc:
        out.kind, out.why = "sql_error", f"SQL fails: {exc}"
        return out
    out.ok, out.why = same_result(got, want, cls.ordered)
    if not out.ok and cls.ordered and same_result(got, want, False)[0]:
        out.why = f"the right rows in another order ({out.why})"  # a wrong direction, or ties
    out.kind = "right" if out.ok else "wrong"
    return out


# -- reporting ----------------------------------------------------------------------------------


def _p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=20, method="inclusive")[-1]  # linear between the ranks


def _score(items: list[Outcome]) -> dict[str, Any]:
    right = sum(o.ok for o in items)
    return {"right": right, "n": len(items), "accuracy": 100 * right / len(items) if items else float("nan")}


def summarize(outcomes: list[Outcome]) -> dict[str, Any]:
    """Every figure the report prints (and ``--json`` writes)."""
    groups: dict[str, dict[str, list[Outcome]]] = {"db": {}, "shape": {}, "needs": {}}
    for o in outcomes:
        groups["db"].setdefault(o.db, []).append(o)
        groups["shape"].setdefault(o.shape, []).append(o)
        for need in o.needs or ("(none)",):
            groups["needs"].setdefault(need, []).append(o)
    times = [o.ms for o in outcomes]
    no_join = [o for o in outcomes if o.shape == "simple"]
    return {
        "overall": _score(outcomes),
        "simple": _score(no_join),
        "by_db": {k: _score(v) for k, v in sorted(groups["db"].items())},
        "by_shape": {k: _score(groups["shape"][k]) for k in SHAPES if k in groups["shape"]},
        "by_need": {k: _score(groups["needs"][k]) for k in (*NEEDS, "(none)") if k in groups["needs"]},
        "outcomes": dict(collections.Counter(o.kind for o in outcomes)),
        "latency_ms": {"p50": statistics.median(times) if times else float("nan"),
                       "p95": _p95(times), "max": max(times, default=float("nan"))},
        "by_confidence": _by_confidence(outcomes),
    }


#: Confidence bands of answered questions; the middle edge is the default llm_confidence_threshold.
CONFIDENCE_BANDS = ((0.9, 1.01, ">= 0.9"), (0.6, 0.9, "0.6 - 0.9"), (0.0, 0.6, "< 0.6 (low)"))


def _by_confidence(outcomes: list[Outcome]) -> dict[str, Any]:
    """Accuracy per band of the parser's confidence: calibrated when it falls band by band."""
    answered = [o for o in outcomes if o.confidence is not None]
    return {name: _score([o for o in answered if lo <= o.confidence < hi]) for lo, hi, name in CONFIDENCE_BANDS}


def _line(name: str, score: dict[str, Any]) -> str:
    return f"   {name:<30} {score['right']:>4}/{score['n']:<4} {score['accuracy']:5.1f}%"


def report(outcomes: list[Outcome], summary: dict[str, Any], show_failures: bool) -> None:
    overall, simple = summary["overall"], summary["simple"]
    print(f"\n== spider-open: execution accuracy {overall['right']}/{overall['n']} = {overall['accuracy']:.1f}% "
          f"(simple: {simple['right']}/{simple['n']} = {simple['accuracy']:.1f}%)")
    for title, key in (("per database", "by_db"), ("per shape of the gold SQL", "by_shape"),
                       ("per need of the gold SQL (a question can have several)", "by_need")):
        print(f"\n   {title}")
        for name, score in summary[key].items():
            print(_line(name, score))
    kinds = summary["outcomes"]
    print("\n   outcomes: " + ", ".join(f"{k} {kinds[k]}" for k in
                                         ("right", "wrong", "not_understood", "refused", "sql_error", "crash")
                                         if k in kinds))
    bands = summary["by_confidence"]
    print("   accuracy by the parser's confidence (answered questions): " + ", ".join(
        f"{name} {b['right']}/{b['n']} = {b['accuracy']:.1f}%" for name, b in bands.items()))
    lat = summary["latency_ms"]
    print(f"   NLPAgent.answer latency: p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms, max {lat['max']:.1f} ms")
    crashes = [o for o in outcomes if o.kind == "crash"]
    failures = [o for o in outcomes if not o.ok] if show_failures else crashes
    if failures:
        print(f"\n   failures ({len(failures)}):" if show_failures else f"\n   parser crashes ({len(crashes)}):")
    for o in failures:
        print(f"   - [{o.db}, {o.shape}] {o.question!r}: {o.why}")
        print(f"       gold: {' '.join(o.gold.split())}")
        print(f"       ours: {o.sql or '-'}")


# -- main ---------------------------------------------------------------------------------------


def load(data_dir: Path, only: set[str] | None) -> dict[str, list[dict]]:
    """The questions per database, in file order."""
    path = data_dir / "questions.json"
    if not path.exists():
        raise SystemExit(f"{path} not found (--data-dir)")
    by_db: dict[str, list[dict]] = {}
    for item in json.loads(path.read_text()):
        if only is None or item["db"] in only:
            by_db.setdefault(item["db"], []).append(item)
    if only and (missing := only - set(by_db)):
        raise SystemExit(f"no questions for {', '.join(sorted(missing))} (databases: see {path})")
    return by_db


async def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DATA, help=f"questions.json and <db>.sqlite (default {DATA})")
    parser.add_argument("--db", help="only these databases (comma-separated)")
    parser.add_argument("--failures", action="store_true", help="list every failure: question, gold SQL, ours or the refusal")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the figures and every outcome to FILE")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds a statement may run (default 10)")
    args = parser.parse_args(argv)
    only = {name.strip() for name in args.db.split(",")} if args.db else None
    started = time.perf_counter()
    outcomes: list[Outcome] = []
    for db, items in load(args.data_dir, only).items():
        outcomes.extend(await run_database(db, items, args.data_dir, args.timeout))
    summary = summarize(outcomes)
    report(outcomes, summary, args.failures)
    print(f"\n   {len(outcomes)} questions in {time.perf_counter() - started:.1f} s")
    if args.json:
        data = {**summary, "questions": [dataclasses.asdict(o) for o in outcomes]}
        args.json.write_text(json.dumps(data, indent=1, ensure_ascii=False, default=str))
        print(f"   figures written to {args.json}")
    return summary


if __name__ == "__main__":
    asyncio.run(main())
