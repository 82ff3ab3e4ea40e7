"""A repeated question's answer says it comes from the result cache (answer_cache.py), in a real
browser against the real demo server (fixtures in conftest.py)."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser


def test_a_repeated_question_says_its_answer_is_cached(page):
    from playwright.sync_api import expect

    page.get_by_test_id("login-username").fill("demo")
    page.get_by_test_id("login-password").fill("demo")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "connected")
    # The demo's simulator inserts orders all the time (each insert drops the cached answers
    # reading orders): ask about customers. The first answers on a table are not stored until
    # its change detector has a baseline.
    cards = page.get_by_test_id("query-card")
    for asked in range(1, 31):
        page.get_by_test_id("question-input").fill("number of customers by region")
        page.get_by_test_id("question-input").press("Enter")
        expect(cards).to_have_count(asked)
        card = cards.last  # the newest answer is appended
        expect(card.get_by_test_id("timings")).to_be_visible()
        if card.get_by_test_id("cached").count():
            break
        page.wait_for_timeout(300)
    badge = card.get_by_test_id("cached")
    expect(badge).to_be_visible()
    assert re.fullmatch(r"cached, \d+ s old", badge.inner_text().strip(), re.IGNORECASE)
    assert "no change to their tables since" in (badge.get_attribute("title") or "")
    card.get_by_test_id("timings").screenshot(path="/tmp/livebi-cached-card.png")
