"""Schema and value linking on a schema the parser was never tuned on (issue 10).

String conditions ("starts with", "has X in their name"), abbreviated and compound names,
role-named keys, measures named by their meaning or unit, and values of the question (codes,
genders, camel-case values). The schema is made up here: a small publishing house whose naming
habits (``FName``, ``Edited_by``, ``weight_kg``, ``PrintedVia``, ``Bookshop``) are common in
real databases. Every answer is run on SQLite and compared with a gold query.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3

import pytest

from livebi.agents.nlp import NLPAgent, SemanticModel
from livebi.agents.nlp.linker import link
from livebi.agents.nlp.normalize import tokenize
from livebi.warehouse import sqlite as sqlite_module
from livebi.warehouse.base import Column, ForeignKey, Schema, Table

from .test_nlp_projection import TODAY, _answers, _table

BOOKS = """
CREATE TABLE Printer (PrinterId INTEGER PRIMARY KEY, CompanyName TEXT, City TEXT, zip_postcode TEXT);
CREATE TABLE Writer (WriterId INTEGER PRIMARY KEY, FName TEXT, LName TEXT, Sex TEXT, BirthState TEXT);
CREATE TABLE Book (BookId INTEGER PRIMARY KEY, Title TEXT, Genre TEXT, Edited_by TEXT, weight_kg REAL,
                   WriterId INTEGER, PrintedVia INTEGER, format_code TEXT, Milliseconds INTEGER);
CREATE TABLE Bookshop (ShopId INTEGER PRIMARY KEY, ShopName TEXT, Town TEXT, Cafe_available TEXT,
                       Number_titles INTEGER);
CREATE TABLE Format (format_code TEXT PRIMARY KEY, format_description TEXT);
CREATE TABLE Ref_Languages (language_code TEXT PRIMARY KEY, language_name TEXT);
CREATE TABLE Award_Programs (ProgramId INTEGER PRIMARY KEY, Title TEXT);
CREATE TABLE Staff (StaffId INTEGER PRIMARY KEY, FullName TEXT, ReportsTo INTEGER);
CREATE TABLE Branch (BranchId INTEGER PRIMARY KEY, City TEXT, manager_id INTEGER, Status TEXT);
CREATE TABLE Client (ClientId INTEGER PRIMARY KEY, Company TEXT, SupportRepId INTEGER);
CREATE TABLE Review (ReviewId INTEGER PRIMARY KEY, critic_id INTEGER, BookId INTEGER, Level_of_praise INTEGER,
                     Original_post_date TEXT, Nationality TEXT);
INSERT INTO Printer VALUES (1, 'Acme Press', 'Leeds', 'LS1'), (2, 'Night Owl Print', 'York', 'YO1'),
                           (3, 'Zenith Press', 'Bath', 'BA1');
INSERT INTO Writer VALUES (1, 'Ann', 'Larsson', 'F', 'NewYork'), (2, 'Bob', 'Stone', 'M', 'Ohio'),
                          (3, 'Cleo', 'Jansson', 'F', 'Ohio'), (4, 'Dan', 'Wu', 'M', 'NorthCarolina');
INSERT INTO Book VALUES (1, 'The Night Garden', 'fiction', 'Mia Ross', 0.4, 1, 1, 'HB', 4000),
                        (2, 'Quiet Rivers', 'poetry', 'Mia Ross', 0.2, 2, 2, 'PB', 1000),
                        (3, 'The Zebra Code', 'fiction', 'Leo Park', 0.6, 3, 1, 'PB', 3000),
                        (4, 'Night Shift', 'crime', 'Leo Park', 0.5, 4, 3, 'EB', 2000),
                        (5, 'Rivers of Ice', 'fiction', 'Ida Holm', 0.3, 1, 2, 'HB', 5000);
INSERT INTO Bookshop VALUES (1, 'Page One', 'Leeds', 'no', 900), (2, 'Ink and Paper', 'York', 'yes', 2500),
                            (3, 'Folio', 'Bath', 'yes', 1200);
INSERT INTO Format VALUES ('HB', 'hardback'), ('PB', 'paperback'), ('EB', 'e-book');
INSERT INTO Ref_Languages VALUES ('EN', 'English'), ('FR', 'French');
INSERT INTO Award_Programs VALUES (1, 'Golden Quill'), (2, 'Silver Page'), (3, 'First Novel');
INSERT INTO Branch VALUES (1, 'Leeds', NULL, 'open'), (2, 'York', NULL, 'under construction'),
                          (3, 'Bath', NULL, 'shut down'), (4, 'Hull', NULL, 'open');
INSERT INTO Staff VALUES (1, 'Ada Lane', NULL), (2, 'Ben Ode', 1);
INSERT INTO Client VALUES (1, 'Acme', 1), (2, 'Bolt', 2), (3, 'Core', 2);
INSERT INTO Review VALUES (1, 2, 1, 5, '2024-01-03', 'Irish'), (2, 2, 3, 2, '2024-02-11', 'Irish'),
                          (3, 4, 1, 4, '2024-03-05', 'Welsh');
"""

@pytest.fixture(scope="module")
def books():
    con = sqlite3.connect(":memory:")
    con.executescript(BOOKS)
    tables = [_table(con, name) for name in ("Printer", "Writer", "Book", "Bookshop", "Format", "Staff",
                                            "Branch", "Ref_Languages", "Award_Programs", "Client", "Review")]
    # a declared key whose name says the role of the row it points to, not its table
    tables[-1] = dataclasses.replace(tables[-1], foreign_keys=(ForeignKey(("critic_id",), "Writer", ("WriterId",)),))
    tables[-2] = dataclasses.replace(tables[-2], foreign_keys=(ForeignKey(("SupportRepId",), "Staff", ("StaffId",)),))
    schema = Schema(tuple(tables))
    values = {pair: [v for (v,) in con.execute(f"SELECT DISTINCT {pair[1]} FROM {pair[0]}")]
              for pair in SemanticModel.value_columns(schema)}
    yield con, SemanticModel.from_schema(schema, values)
    con.close()


# -- 1. string conditions ------------------------------------------------------------------------


@pytest.mark.parametrize("question, gold", [
    ("books whose title starts with The", "SELECT Title FROM Book WHERE Title LIKE 'The%'"),
    ("list the books whose title begins with night", "SELECT Title FROM Book WHERE Title LIKE 'night%'"),
    ("how many books have Rivers in their title", "SELECT COUNT(*) FROM Book WHERE Title LIKE '%Rivers%'"),
    ("printers with Press in their company name",
     "SELECT CompanyName FROM Printer WHERE CompanyName LIKE '%Press%'"),
    ("books with the letter z in their title", "SELECT Title FROM Book WHERE Title LIKE '%z%'"),
    ("books whose title contains 'ice'", "SELECT Title FROM Book WHERE Title LIKE '%ice%'"),
    ("books whose title does not contain the letter e", "SELECT Title FROM Book WHERE Title NOT LIKE '%e%'"),
    ("books whose title ends with Shift", "SELECT Title FROM Book WHERE Title LIKE '%Shift'"),
    ("how many printers are in a city whose name starts with Y",
     "SELECT COUNT(*) FROM Printer WHERE City LIKE 'Y%'"),
])
def test_string_conditions_filter_the_named_text_column(books, question, gold):
    sql = _answers(books, question, gold)
    assert "LIKE" in sql, sql


def test_the_text_of_a_string_condition_is_neither_linked_nor_ignored(books):
    con, model = books
    parsed = NLPAgent(today=TODAY).parse("how many books have Rivers in their title", model, dialect="sqlite")
    assert parsed.ignored == [] and con.execute(parsed.sql).fetchall() == [(2,)], parsed.sql


def test_a_weak_verb_without_a_text_clue_is_not_a_string_condition(books):
    con, model = books
    # "with" + a column is not "contains": the books of each genre, no LIKE on anything
    parsed = NLPAgent(today=TODAY).parse("how many books with genre fiction", model, dialect="sqlite")
    assert "LIKE" not in parsed.sql and con.execute(parsed.sql).fetchall() == [(3,)], parsed.sql


@pytest.mark.parametrize("question", ["the printer named Zenith Press", "the printer called 'zenith press'",
                                      "the printer whose name is Zenith Press",
                                      "city of the printer with the name Zenith Press"])
def test_named_gives_an_equality_on_the_label_when_the_value_is_not_indexed(books, question):
    con, model = books
    bare = SemanticModel.from_schema(model.schema)  # no value index: names of thousands of rows
    parsed = NLPAgent(today=TODAY).parse(question, bare, dialect="sqlite")
    rows = con.execute(parsed.sql).fetchall()
    assert len(rows) == 1 and "Zenith Press" in rows[0], parsed.sql


@pytest.mark.parametrize("question, gold", [
    ("list the reviews with praise level 5", "SELECT ReviewId FROM Review WHERE Level_of_praise = 5"),
    ("how many reviews have a level of praise of 4 or 5", "SELECT COUNT(*) FROM Review WHERE Level_of_praise IN (4, 5)"),
    ("how many reviews whose praise level is 2", "SELECT COUNT(*) FROM Review WHERE Level_of_praise = 2"),
    ("how many reviews below praise level 4", "SELECT COUNT(*) FROM Review WHERE Level_of_praise < 4"),
])
def test_a_number_next_to_a_column_is_an_equality(books, question, gold):
    sql = _answers(books, question, gold)
    assert "Level_of_praise" in sql.split("WHERE")[-1], sql


@pytest.mark.parametrize("question, gold", [
    ("how many books are heavier than 0.45", "SELECT COUNT(*) FROM Book WHERE weight_kg > 0.45"),
    ("list the books lighter than 0.35", "SELECT Title FROM Book WHERE weight_kg < 0.35"),
])
def test_a_comparative_adjective_names_its_measure(books, question, gold):
    sql = _answers(books, question, gold)
    assert "weight_kg" in sql.split("WHERE")[-1], sql


def test_a_number_kept_by_a_comparison_is_no_equality(books):
    con, model = books
    parsed = NLPAgent(today=TODAY).parse("how many reviews with praise level over 3", model, dialect="sqlite")
    assert con.execute(parsed.sql).fetchall() == [(2,)], parsed.sql


# -- 2. names: abbreviations, compounds, participles, units, role-named keys --------------------


@pytest.mark.parametrize("question, gold", [
    ("list the first names of writers", "SELECT FName FROM Writer"),
    ("show the first name and last name of every writer", "SELECT FName, LName FROM Writer"),
    ("how many book shops are there", "SELECT COUNT(*) FROM Bookshop"),
    ("how many books did each editor edit", "SELECT Edited_by, COUNT(*) FROM Book GROUP BY Edited_by"),
    ("average weight of books", "SELECT AVG(weight_kg) FROM Book"),
    ("what is the average book length", "SELECT AVG(Milliseconds) FROM Book"),
    ("number of books per printer",
     "SELECT p.CompanyName, COUNT(*) FROM Book b JOIN Printer p ON b.PrintedVia = p.PrinterId GROUP BY p.PrinterId"),
    ("how many book stores are there", "SELECT COUNT(*) FROM Bookshop"),
    ("how many different bookstore towns are there", "SELECT COUNT(DISTINCT Town) FROM Bookshop"),
    ("average praise level of reviews", "SELECT AVG(Level_of_praise) FROM Review"),
    ("list the reviews ordered by post date", "SELECT Original_post_date FROM Review ORDER BY Original_post_date"),
    ("number of reviews per nation", "SELECT Nationality, COUNT(*) FROM Review GROUP BY Nationality"),
    ("how many reviews does each critic have",
     "SELECT w.LName, COUNT(*) FROM Review r JOIN Writer w ON r.critic_id = w.WriterId GROUP BY w.WriterId"),
    ("list the shop_name of bookshops", "SELECT ShopName FROM Bookshop"),
    ("how many clients does each support rep have",
     "SELECT s.FullName, COUNT(*) FROM Client c JOIN Staff s ON c.SupportRepId = s.StaffId GROUP BY s.StaffId"),
    ("how many languages are there", "SELECT COUNT(*) FROM Ref_Languages"),
    ("how many awards are there", "SELECT COUNT(*) FROM Award_Programs"),
    ("what is the zip code of the printer in York", "SELECT zip_postcode FROM Printer WHERE City = 'York'"),
    ("list the bookshops in descending order of number of titles",
     "SELECT Number_titles FROM Bookshop ORDER BY Number_titles DESC"),
])
def test_names_beyond_the_column_words(books, question, gold):
    _answers(books, question, gold)


def test_role_named_and_same_named_keys_are_inferred_as_joins(books):
    _, model = books
    edges = {(e.child, e.child_cols, e.parent) for e in model.edges}
    assert ("Book", ("PrintedVia",), "Printer") in edges  # "printed via" -> a printer
    assert ("Book", ("WriterId",), "Writer") in edges
    assert not any(e.child_cols == ("weight_kg",) for e in model.edges)
    # hierarchy keys: a row reports to another row of its table; a manager is one of the staff
    assert ("Staff", ("ReportsTo",), "Staff") in edges and ("Branch", ("manager_id",), "Staff") in edges
    assert model.column("Staff", "ReportsTo").role == "key"  # not a measure to total


# -- 3. values: codes, genders, camel-case values ------------------------------------------------


@pytest.mark.parametrize("question, gold", [
    ("how many books have format code PB", "SELECT COUNT(*) FROM Book WHERE format_code = 'PB'"),
    ("how many female writers are there", "SELECT COUNT(*) FROM Writer WHERE Sex = 'F'"),
    ("list the male writers", "SELECT FName FROM Writer WHERE Sex = 'M'"),
    ("writers from North Carolina", "SELECT FName FROM Writer WHERE BirthState = 'NorthCarolina'"),
    ("how many bookshops have a cafe available", "SELECT COUNT(*) FROM Bookshop WHERE Cafe_available = 'yes'"),
    ("how many fictional books are there", "SELECT COUNT(*) FROM Book WHERE Genre = 'fiction'"),
    ("how many branches are under construction", "SELECT COUNT(*) FROM Branch WHERE Status = 'under construction'"),
    ("list the branches that are Shut Down", "SELECT City FROM Branch WHERE Status = 'shut down'"),
])
def test_values_of_the_question(books, question, gold):
    sql = _answers(books, question, gold)
    assert "WHERE" in sql, sql


def test_a_short_code_in_lower_case_is_a_word_not_a_code(books):
    _, model = books
    assert any(lk.kind == "value" for lk in model.phrases[("pb",)])
    parsed = NLPAgent(today=TODAY).parse("books with format code PB", model, dialect="sqlite")
    assert "'PB'" in parsed.sql
    assert not any(m.of_kind("value") for m in link(tokenize("eb"), set(), model))


# -- 4. names of many rows -----------------------------------------------------------------------


def test_name_columns_index_more_values_than_other_text_columns():
    assert SemanticModel.value_limit("CompanyName") > SemanticModel.value_limit("City") >= 200
    assert SemanticModel.value_limit("title") == SemanticModel.value_limit("customer_name")


def test_the_agent_indexes_the_names_of_a_large_table(tmp_path):
    path = tmp_path / "people.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customer (customer_id INTEGER PRIMARY KEY, customer_name TEXT, city TEXT)")
    con.executemany("INSERT INTO customer VALUES (?, ?, ?)",
                    [(i, f"Client {i:04d}", f"Town {i:04d}") for i in range(600)] + [(600, "Rose", "Town 0001")])
    con.commit()
    con.close()
    warehouse = sqlite_module.SQLiteWarehouse("people", f"sqlite:///{path}")
    agent = NLPAgent(today=TODAY)
    model = asyncio.run(_built_then_closed(agent.model_for(warehouse), warehouse))
    assert ("customer", "customer_name") in model.values  # 601 names: indexed
    assert ("customer", "city") not in model.values  # 600 towns: too many for a plain column
    sql = agent.parse("how many customers are named Client 0042", model, dialect="sqlite").sql
    assert "'Client 0042'" in sql, sql
    # one word of a name among hundreds links only when typed as a name
    assert any(m.of_kind("value") for m in link(tokenize("orders of Rose"), set(), model))
    assert not any(m.of_kind("value") for m in link(tokenize("orders of rose"), set(), model))


async def _built_then_closed(building, warehouse):
    try:
        return await building
    finally:
        await warehouse.close()


def test_of_two_keys_to_one_table_joins_take_the_first_column():
    """Friend(student_id, friend_id), Students(current_address_id, permanent_address_id): the
    first key is the row's main role, the one a question about the row means by default."""
    team = Table("team", (Column("team_id", "INTEGER", "number"), Column("name", "TEXT", "text")), ("team_id",))
    game = Table("game", (Column("game_id", "INTEGER", "number"), Column("home_team_id", "INTEGER", "number"),
                          Column("away_team_id", "INTEGER", "number")), ("game_id",),
                 (ForeignKey(("away_team_id",), "team", ("team_id",)), ForeignKey(("home_team_id",), "team", ("team_id",))))
    model = SemanticModel.from_schema(Schema((team, game)))
    [(edge, _)] = model.paths_from("game")["team"]
    assert edge.child_cols == ("home_team_id",)
