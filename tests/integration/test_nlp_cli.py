"""``livebi ask --format json`` on Northwind: business questions, hostile ones, semantic layers."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

from .test_cli import answers, livebi

HOSTILE = ["", "; drop table \"Order\"", "delete all customers", "' OR 1=1 --", "a" * 3000,
           "purple monkey dishwasher", "revenue by country; DROP TABLE Customer; --", "SELECT * FROM \"Order\"",
           "attach database '/tmp/x.db' as x", "🙂"]


def test_northwind_business_questions_answer_without_any_northwind_code(northwind_path: Path) -> None:
    questions = ["how many orders were shipped to Germany", "top 3 customers by revenue in 2013",
                 "revenue by category", "which employee handled the most orders"]
    proc = livebi("ask", "--warehouse", f"sqlite:///{northwind_path}", "--format", "json", *questions,
                  env={"LIVEBI_TODAY": "2014-05-06"})
    assert proc.returncode == 0, proc.stderr
    out = {o["question"]: o for o in answers(proc)}
    con = sqlite3.connect(f"file:{northwind_path}?mode=ro", uri=True)
    assert out[questions[0]]["rows"] == [list(con.execute(
        "SELECT COUNT(*) FROM \"Order\" WHERE ShipCountry = 'Germany'").fetchone())]
    gold = con.execute(
        "SELECT c.CompanyName, SUM(d.UnitPrice * d.Quantity * (1 - d.Discount)) r FROM OrderDetail d "
        "JOIN \"Order\" o ON o.Id = d.OrderId JOIN Customer c ON c.Id = o.CustomerId "
        "WHERE o.OrderDate >= '2013-01-01' AND o.OrderDate < '2014-01-01' GROUP BY c.Id ORDER BY r DESC LIMIT 3").fetchall()
    got = out[questions[1]]["rows"]
    assert [r[0] for r in got] == [r[0] for r in gold]
    assert [round(r[-1], 2) for r in got] == [round(r[1], 2) for r in gold]
    assert len(out[questions[2]]["rows"]) == 8 and out[questions[2]]["engine"] == "parser"
    top = con.execute("SELECT e.LastName FROM \"Order\" o JOIN Employee e ON e.Id = o.EmployeeId "
                      "GROUP BY e.Id ORDER BY COUNT(*) DESC LIMIT 1").fetchone()[0]
    assert out[questions[3]]["rows"][0][0] == top


def test_hostile_questions_give_errors_or_safe_selects_never_a_write(northwind_path: Path, tmp_path: Path) -> None:
    copy = tmp_path / "northwind.sqlite"
    shutil.copy(northwind_path, copy)
    proc = livebi("ask", "--warehouse", f"sqlite:///{copy}", "--format", "json", *HOSTILE)
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr
    out = answers(proc)
    assert [o["question"] for o in out] == HOSTILE
    for o in out:
        if "error" in o:
            assert o["error"]["code"] in {"empty_question", "question_too_long", "not_understood"}, o
            assert o["error"]["message"] and o["error"]["stage"] == "nlp_processing"
        else:
            assert o["sql"].lstrip().upper().startswith("SELECT") and ";" not in o["sql"], o
    con = sqlite3.connect(copy)
    assert con.execute('SELECT COUNT(*) FROM "Order"').fetchone() == (830,)
    assert con.execute("SELECT COUNT(*) FROM Customer").fetchone() == (91,)


def test_a_semantic_layer_on_the_command_line(northwind_path: Path, tmp_path: Path) -> None:
    layer = tmp_path / "northwind.yaml"
    layer.write_text(
        "tables:\n"
        "  Customer: {synonyms: [clients]}\n"
        "metrics:\n"
        "  freight cost: {table: Order, expression: SUM(Freight)}\n"
        "relationships:\n"
        "  - {from: Order.ShipVia, to: Shipper.Id}\n"
    )
    proc = livebi("ask", "--warehouse", f"sqlite:///{northwind_path}", "--semantic-layer", str(layer),
                  "--format", "json", "how many clients", "freight cost by shipper")
    assert proc.returncode == 0, proc.stderr
    clients, freight = answers(proc)
    assert clients["rows"] == [[91]]
    con = sqlite3.connect(f"file:{northwind_path}?mode=ro", uri=True)
    gold = dict(con.execute('SELECT s.CompanyName, SUM(o.Freight) FROM "Order" o JOIN Shipper s ON s.Id = o.ShipVia '
                            "GROUP BY 1").fetchall())
    assert {r[0]: round(r[1], 2) for r in freight["rows"]} == {k: round(v, 2) for k, v in gold.items()}


def test_a_bad_semantic_layer_stops_before_any_question(northwind_path: Path, tmp_path: Path) -> None:
    layer = tmp_path / "bad.yaml"
    layer.write_text("metrics:\n  margin: {table: OrderDetail, expression: SUM(UnitPrise)}\n")
    proc = livebi("ask", "--warehouse", f"sqlite:///{northwind_path}", "--semantic-layer", str(layer),
                  "--format", "json", "how many orders")
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"{layer}: metrics → margin" in proc.stderr and "did you mean UnitPrice" in proc.stderr
    assert "Traceback" not in proc.stderr
    json.dumps(proc.stderr)


def test_the_confidence_is_printed_and_a_low_one_asks_to_check(northwind_path: Path) -> None:
    sure, unsure = "revenue by category", "revenue by category for loyal customers"
    proc = livebi("ask", "--warehouse", f"sqlite:///{northwind_path}", "--format", "json", sure, unsure)
    assert proc.returncode == 0, proc.stderr
    out = {o["question"]: o for o in answers(proc)}
    assert out[sure]["low_confidence"] is False and out[sure]["confidence"] >= 0.9
    assert out[unsure]["low_confidence"] is True and out[unsure]["confidence"] < 0.6
    assert any('"loyal"' in r for r in out[unsure]["confidence_reasons"])
    text = livebi("ask", "--warehouse", f"sqlite:///{northwind_path}", sure, unsure)
    assert text.returncode == 0, text.stderr
    assert text.stdout.count("Please check (confidence ") == 1 and 'did not understand "loyal"' in text.stdout
