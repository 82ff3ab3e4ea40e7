"""Projection: columns a question only names are listed per row, not totalled or averaged.

"the points of climbers" lists each climber's points; aggregates come only from an
aggregation word ("total", "average", "how many"), a breakdown ("by country") or a KPI-shaped
question with no entity to list. The schema is made up here, unlike any the parser was tuned on.
"""

from __future__ import annotations

import collections
import datetime as dt
import sqlite3

import pytest

from livebi.agents.nlp import NLPAgent, SemanticModel
from livebi.warehouse.base import Column, Schema, Table

TODAY = dt.date(2024, 6, 30)

CLIMBS = """
CREATE TABLE climber (climber_id INTEGER PRIMARY KEY, name TEXT, country TEXT, height REAL, points INTEGER);
CREATE TABLE ascent (ascent_id INTEGER PRIMARY KEY, climber_id INTEGER REFERENCES climber(climber_id),
                     summit TEXT, hours REAL, price REAL);
INSERT INTO climber VALUES (1, 'Ama', 'Nepal', 1.62, 40), (2, 'Bea', 'Chile', 1.70, 25),
                           (3, 'Cal', 'Nepal', 1.81, 25), (4, 'Dov', 'Peru', 1.75, 10);
INSERT INTO ascent VALUES (1, 1, 'Lhotse', 30.5, 900), (2, 1, 'Makalu', 22.0, 700), (3, 2, 'Aconcagua', 12.0, 300),
                          (4, 3, 'Cho Oyu', 18.5, 500);
"""


KINDS = {"INTEGER": "number", "REAL": "number", "TEXT": "text"}


def _table(con: sqlite3.Connection, name: str) -> Table:
    info = con.execute(f"PRAGMA table_info({name})").fetchall()  # (cid, name, type, notnull, default, pk)
    return Table(name, tuple(Column(c[1], c[2], KINDS[c[2]]) for c in info), tuple(c[1] for c in info if c[5]))


@pytest.fixture(scope="module")
def climbs():
    con = sqlite3.connect(":memory:")
    con.executescript(CLIMBS)
    schema = Schema((_table(con, "climber"), _table(con, "ascent")))
    values = {pair: [v for (v,) in con.execute(f"SELECT DISTINCT {pair[1]} FROM {pair[0]}")]
              for pair in SemanticModel.value_columns(schema)}
    yield con, SemanticModel.from_schema(schema, values)
    con.close()


def _columns(cursor) -> list[collections.Counter]:
    rows = cursor.fetchall()
    width = len(cursor.description)
    return [collections.Counter(round(r[i], 4) if isinstance(r[i], float) else r[i] for r in rows)
            for i in range(width)]


def _answers(climbs, question: str, gold: str) -> str:
    """Every gold column is found among the answer's columns with the same values per row."""
    con, model = climbs
    parsed = NLPAgent(today=TODAY).parse(question, model, dialect="sqlite")
    got = _columns(con.execute(parsed.sql))
    for want in _columns(con.execute(gold)):
        assert want in got, (question, parsed.sql)
    return parsed.sql


@pytest.mark.parametrize("question, gold", [
    ("list the points of climbers", "SELECT points FROM climber"),
    ("show the heights of all climbers", "SELECT height FROM climber"),
    ("list the names and points of climbers", "SELECT name, points FROM climber"),
    ("what are the points of the climbers", "SELECT points FROM climber"),
    ("give the hours of ascents", "SELECT hours FROM ascent"),
])
def test_named_columns_are_listed_per_row(climbs, question, gold):
    sql = _answers(climbs, question, gold)
    assert "SUM(" not in sql.upper() and "AVG(" not in sql.upper(), sql


@pytest.mark.parametrize("question, gold", [
    ("total points of climbers", "SELECT SUM(points) FROM climber"),
    ("average height of climbers", "SELECT AVG(height) FROM climber"),
    ("points by country", "SELECT country, SUM(points) FROM climber GROUP BY country"),
    ("average height per country", "SELECT country, AVG(height) FROM climber GROUP BY country"),
    ("how many climbers", "SELECT COUNT(*) FROM climber"),
    ("total hours", "SELECT SUM(hours) FROM ascent"),
    ("hours for each climber", ("SELECT climber.name, SUM(hours) FROM ascent JOIN climber "
                                "USING (climber_id) GROUP BY climber.climber_id")),
])
def test_aggregates_stay_when_asked(climbs, question, gold):
    _answers(climbs, question, gold)


def test_an_aggregation_word_anywhere_keeps_the_aggregate(climbs):
    """"list" inside "the average list price" is not a listing verb."""
    _answers(climbs, "what is the average height of the climbers", "SELECT AVG(height) FROM climber")
    _answers(climbs, "what is the average list price of the ascents", "SELECT AVG(price) FROM ascent")


def test_a_column_compared_in_the_question_is_still_listed(climbs):
    _answers(climbs, "list the names and points of climbers with points greater than 20",
             "SELECT name, points FROM climber WHERE points > 20")


def _ordered(climbs, question: str, gold: str) -> str:
    """The gold's first column comes back in the same row order."""
    con, model = climbs
    parsed = NLPAgent(today=TODAY).parse(question, model, dialect="sqlite")
    cursor = con.execute(parsed.sql)
    rows = cursor.fetchall()
    want = [r[0] for r in con.execute(gold).fetchall()]
    columns = [[r[i] for r in rows] for i in range(len(cursor.description))]
    assert want in columns, (question, parsed.sql)
    return parsed.sql


@pytest.mark.parametrize("question, gold", [
    ("list the names of climbers sorted by height", "SELECT name FROM climber ORDER BY height"),
    ("list the names of climbers ordered by height", "SELECT name FROM climber ORDER BY height"),
    ("show the names of climbers sorted by height in descending order",
     "SELECT name FROM climber ORDER BY height DESC"),
    ("list the names of climbers in descending order of height", "SELECT name FROM climber ORDER BY height DESC"),
    ("list the heights of climbers in descending order", "SELECT height FROM climber ORDER BY height DESC"),
    ("list the heights of climbers in ascending order", "SELECT height FROM climber ORDER BY height"),
    ("list the heights of climbers from highest to lowest", "SELECT height FROM climber ORDER BY height DESC"),
    ("list the hours of ascents in descending order", "SELECT hours FROM ascent ORDER BY hours DESC"),
    ("list the summits of ascents alphabetically", "SELECT summit FROM ascent ORDER BY summit"),
])
def test_listings_follow_the_order_asked(climbs, question, gold):
    sql = _ordered(climbs, question, gold)
    assert "SUM(" not in sql.upper() and "LIMIT 1" not in sql.upper().replace("LIMIT 10", ""), sql


@pytest.mark.parametrize("question, gold", [
    ("list the different countries of climbers", "SELECT DISTINCT country FROM climber"),
    ("what are the distinct countries of the climbers", "SELECT DISTINCT country FROM climber"),
    ("show the unique countries of climbers", "SELECT DISTINCT country FROM climber"),
])
def test_distinct_listings_show_each_value_once(climbs, question, gold):
    con, model = climbs
    sql = _answers(climbs, question, gold)
    assert len(con.execute(sql).fetchall()) == 3, sql


def test_how_many_different_is_still_a_distinct_count(climbs):
    _answers(climbs, "how many different countries do climbers come from",
             "SELECT COUNT(DISTINCT country) FROM climber")
