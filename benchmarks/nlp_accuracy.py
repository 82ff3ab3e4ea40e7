"""NLP accuracy and latency benchmark (not part of the test suite).

    .venv/bin/python benchmarks/nlp_accuracy.py              # demo + Northwind + 100-table schema
    .venv/bin/python benchmarks/nlp_accuracy.py --only northwind --show-all
    .venv/bin/python benchmarks/nlp_accuracy.py --heldout    # only the held-out questions
    .venv/bin/python benchmarks/nlp_accuracy.py --spider-open --failures   # runs spider_open.py

For each database, every question of ``benchmarks/questions/<db>.yaml`` (the questions the parser
was tuned on) and of ``<db>_heldout.yaml`` (written for issue 10 before the parser was changed for
them; scored separately) is parsed by the offline
parser (through the real agent and connector, as ``livebi ask`` would), its SQL and the
hand-written gold SQL are run on the same data, and the results compared (**execution
accuracy**): the same number of rows, and every gold column found among the answer's columns
with the same values (extra columns, such as the label next to a key or a share next to a
total, are allowed), in the same row order when the question implies one (``ordered: true``),
as multisets otherwise; numbers are equal to 6 significant digits. It prints accuracy per
category, every failure with both SQL statements, and parse latency (median, p95).

Then a generated 100-table schema (an ERP: sales, purchasing, inventory, HR, finance, support;
realistic names, foreign keys, a value index) measures parse latency alone; the target is a p95
under 50 ms.

Databases: the demo warehouse is generated into a temporary directory
(``generate_demo(path, rows=200_000)``), with relative periods counted from 2025-12-31;
Northwind is ``../shared/data/northwind.sqlite`` beside the checkout, with periods counted from
2014-05-06 (its last order); its held-out questions run with the real date (``today: null``), as a
server does, and expect relative periods to anchor to that last order. Nothing in livebi knows
either database. The matching itself is in ``matching.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import math
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from matching import norm, same_result  # noqa: E402
from synthetic_schema import synthetic_model, synthetic_questions  # noqa: E402

from livebi.agents.nlp import NLPAgent, NotUnderstood  # noqa: E402
from livebi.demo.generate import generate_demo  # noqa: E402
from livebi.warehouse.registry import open_warehouse  # noqa: E402
from livebi.warehouse.safety import UnsafeSQL, validate_select  # noqa: E402

QUESTIONS = Path(__file__).resolve().parent / "questions"
#: (database, set) -> question file. "tuned": the questions the parser was developed on;
#: "heldout": written for issue 10 before the parser was changed for them (see their headers).
QUESTION_FILES = {
    ("demo", "tuned"): "demo.yaml",
    ("demo", "heldout"): "demo_heldout.yaml",
    ("northwind", "tuned"): "northwind.yaml",
    ("northwind", "heldout"): "northwind_heldout.yaml",
}
NORTHWIND = ROOT.parent / "shared" / "data" / "northwind.sqlite"


# -- running one database ---------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    category: str
    question: str
    ok: bool
    why: str = ""
    sql: str = ""
    gold: str = ""
    parse_ms: float = 0.0


async def run_database(name: str, url: str, dialect: str, today: dt.date | None, questions: list[dict],
                       con) -> list[Outcome]:
    """Parse every question with the agent built from ``url``; run answers and gold on ``con``
    (a DB-API style connection, closed at the end). ``today`` None: the real date."""
    with contextlib.closing(con):
        return await _run_database(name, url, dialect, today, questions,
                                   lambda sql: con.execute(sql).fetchall())


async def _run_database(name: str, url: str, dialect: str, today: dt.date | None, questions: list[dict],
                        execute) -> list[Outcome]:
    wh = open_warehouse(name, url)
    agent = NLPAgent(today=today)
    try:
        model = await agent.model_for(wh)
    finally:
        await wh.close()
    outcomes = []
    for item in questions:
        question, gold, category = item["q"], item["sql"], item["category"]
        started = time.perf_counter()
        try:
            parsed = agent.parse(question, model, dialect=dialect)
        except NotUnderstood as exc:
            ms = (time.perf_counter() - started) * 1000
            outcomes.append(Outcome(category, question, False, f"not understood: {exc.message}", "", gold, ms))
            continue
        ms = (time.perf_counter() - started) * 1000
        try:
            want = [tuple(norm(v) for v in row) for row in execute(gold)]
        except Exception as exc:  # a broken gold query is the benchmark's bug: say so loudly
            raise SystemExit(f"gold SQL fails for {question!r}: {exc}\n{gold}") from None
        try:  # the product validates every statement before it runs: so does the benchmark
            sql = validate_select(parsed.sql, dialect=dialect, schema=model.schema)
        except UnsafeSQL as exc:
            outcomes.append(Outcome(category, question, False, f"refused by validation: {exc.code} {exc.message}",
                                    parsed.sql, gold, ms))
            continue
        try:
            got = [tuple(norm(v) for v in row) for row in execute(sql)]
        except Exception as exc:
            outcomes.append(Outcome(category, question, False, f"SQL fails: {exc}", parsed.sql, gold, ms))
            continue
        ok, why = same_result(got, want, bool(item.get("ordered")))
        outcomes.append(Outcome(category, question, ok, why, parsed.sql, gold, ms))
    return outcomes


def load_questions(path: Path) -> tuple[dict, list[dict]]:
    data = yaml.safe_load(path.read_text())
    items = []
    for category, entries in data["questions"].items():
        for entry in entries:
            items.append({**entry, "category": category})
    return data, items


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def report(title: str, outcomes: list[Outcome], show_all: bool) -> dict[str, float]:
    total = len(outcomes)
    right = sum(o.ok for o in outcomes)
    print(f"\n== {title}: execution accuracy {right}/{total} = {100 * right / total:.1f}%")
    by_cat: dict[str, list[Outcome]] = collections.defaultdict(list)
    for o in outcomes:
        by_cat[o.category].append(o)
    for category, items in by_cat.items():
        ok = sum(o.ok for o in items)
        print(f"   {category:<22} {ok:>3}/{len(items):<3} {100 * ok / len(items):5.1f}%")
    times = [o.parse_ms for o in outcomes]
    p50, p95 = statistics.median(times), percentile(times, 0.95)
    print(f"   parse latency: median {p50:.1f} ms, p95 {p95:.1f} ms, max {max(times):.1f} ms")
    failures = [o for o in outcomes if not o.ok]
    if failures:
        print(f"   failures ({len(failures)}):")
    for o in failures:
        print(f"   - [{o.category}] {o.question!r}: {o.why}")
        if show_all or len(failures) <= 25:
            print(f"       sql:  {o.sql or '-'}")
            print(f"       gold: {' '.join(o.gold.split())}")
    return {"accuracy": 100 * right / total, "p50": p50, "p95": p95, "n": total}


# -- main -----------------------------------------------------------------------------------------


def _today(meta: dict) -> str:
    return str(meta["today"]) if meta.get("today") else f"the real date, {dt.date.today()}"


async def bench_demo(rows: int, show_all: bool, sets: list[str]) -> dict[str, dict[str, float]]:
    """The demo questions of each of ``sets`` ("tuned": demo.yaml, "heldout": demo_heldout.yaml)
    on one generated warehouse."""
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "demo.duckdb"
        started = time.perf_counter()
        generate_demo(path, rows=rows)
        print(f"generated the demo warehouse ({rows:,} orders) in {time.perf_counter() - started:.1f} s")
        for which in sets:
            meta, questions = load_questions(QUESTIONS / QUESTION_FILES["demo", which])
            outcomes = await run_database("demo", f"duckdb:///{path}", "duckdb", meta["today"], questions,
                                          duckdb.connect(str(path), read_only=True))
            title = "demo" if which == "tuned" else "demo held-out"
            figures[title] = report(f"{title} (DuckDB, {rows:,} orders, today {_today(meta)})", outcomes, show_all)
    return figures


async def bench_northwind(show_all: bool, sets: list[str]) -> dict[str, dict[str, float]]:
    """The Northwind questions of each of ``sets`` (northwind.yaml, northwind_heldout.yaml)."""
    if not NORTHWIND.exists():
        print(f"\n== Northwind: {NORTHWIND} not found, skipped")
        return {}
    figures = {}
    for which in sets:
        meta, questions = load_questions(QUESTIONS / QUESTION_FILES["northwind", which])
        outcomes = await run_database("northwind", f"sqlite:///{NORTHWIND}", "sqlite", meta["today"], questions,
                                      sqlite3.connect(f"file:{NORTHWIND}?mode=ro", uri=True))
        title = "Northwind" if which == "tuned" else "Northwind held-out"
        figures[title] = report(f"{title} (SQLite, today {_today(meta)})", outcomes, show_all)
    return figures


def bench_synthetic() -> dict[str, float]:
    started = time.perf_counter()
    model = synthetic_model()
    built = (time.perf_counter() - started) * 1000
    agent = NLPAgent(today=dt.date(2025, 12, 31))
    questions = synthetic_questions(model)
    for q in questions[:5]:  # warm caches as the agent does after building a model
        try:
            agent.parse(q, model, dialect="postgres")
        except NotUnderstood:
            pass
    times, failures = [], 0
    for q in questions:
        started = time.perf_counter()
        try:
            agent.parse(q, model, dialect="postgres")
        except NotUnderstood:
            failures += 1
        times.append((time.perf_counter() - started) * 1000)
    p50, p95 = statistics.median(times), percentile(times, 0.95)
    edges = len(model.edges)
    print(f"\n== generated schema: {len(model.tables)} tables, {edges} foreign keys, model built in {built:.0f} ms")
    print(f"   {len(questions)} questions ({failures} not understood): parse median {p50:.1f} ms, "
          f"p95 {p95:.1f} ms, max {max(times):.1f} ms (target p95 < 50 ms)")
    return {"p50": p50, "p95": p95, "n": len(questions)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["demo", "northwind", "synthetic"])
    parser.add_argument("--heldout", action="store_true",
                        help="only the held-out questions (questions/*_heldout.yaml), not the tuned ones")
    parser.add_argument("--tuned", action="store_true", help="only the tuned questions (demo.yaml, northwind.yaml)")
    parser.add_argument("--rows", type=int, default=200_000, help="demo orders to generate")
    parser.add_argument("--show-all", action="store_true", help="print the SQL of every failure")
    parser.add_argument("--spider-open", action="store_true",
                        help="run spider_open.py instead (the options that follow are its own: see its --help)")
    args, rest = parser.parse_known_args()
    if args.spider_open:
        import spider_open

        await spider_open.main(rest)
        return
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.heldout and args.tuned:
        parser.error("--heldout and --tuned exclude each other (neither: both sets)")
    sets = ["heldout"] if args.heldout else ["tuned"] if args.tuned else ["tuned", "heldout"]
    summary: dict[str, dict[str, float]] = {}
    if args.only in (None, "demo"):
        summary.update(await bench_demo(args.rows, args.show_all, sets))
    if args.only in (None, "northwind"):
        summary.update(await bench_northwind(args.show_all, sets))
    if args.only in (None, "synthetic"):
        summary["100 tables"] = bench_synthetic()
    print("\n== summary")
    for name, figures in summary.items():
        if "accuracy" in figures:
            right = round(figures["accuracy"] * figures["n"] / 100)
            acc = f"accuracy {right}/{figures['n']} = {figures['accuracy']:.1f}%, "
        else:
            acc = f"{figures['n']} questions, "
        print(f"   {name:<20} {acc}parse p50 {figures['p50']:.1f} ms, p95 {figures['p95']:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
