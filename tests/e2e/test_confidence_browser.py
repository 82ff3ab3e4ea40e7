"""A low-confidence answer asks to be checked: its assumptions come first, highlighted, with
the confidence; a confident answer keeps them as quiet notes (Debian's chromium, demo server)."""

from __future__ import annotations

import pytest

from .conftest import log_in

pytestmark = pytest.mark.browser


def _ask(page, question: str):
    from playwright.sync_api import expect

    page.get_by_test_id("question-input").fill(question)
    page.get_by_test_id("question-input").press("Enter")
    title = page.get_by_role("heading", name=question, exact=True)
    card = page.get_by_test_id("query-card").filter(has=title)
    expect(card.get_by_test_id("result-table").or_(card.get_by_test_id("result-chart"))
           .or_(card.get_by_test_id("result-kpi")).first).to_be_attached()
    return card


def test_a_low_confidence_answer_shows_its_assumptions_first(page, demo_server):
    from playwright.sync_api import expect

    log_in(page, demo_server, "demo")
    # "loyal" means nothing in the demo data: the parser ignores it, so it is not sure
    card = _ask(page, "total revenue by region for loyal customers")
    check = card.get_by_test_id("check-assumptions")
    expect(check).to_be_visible()
    expect(check).to_contain_text("Please check")
    expect(check.get_by_test_id("check-assumption")).to_contain_text('Ignored "loyal"')
    expect(check.get_by_test_id("result-confidence")).to_have_text("Confidence 55%")
    expect(check.get_by_test_id("check-reasons")).to_contain_text('did not understand "loyal"')
    # at the top of the answer, above the explanation and the chart
    first = card.locator(".answer > *").first
    assert first.get_attribute("data-testid") == "check-assumptions"

    card = _ask(page, "total revenue by region")
    expect(card.get_by_test_id("result-chart")).to_be_visible()
    expect(card.get_by_test_id("check-assumptions")).to_have_count(0)
