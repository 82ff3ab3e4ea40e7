"""Pure logic of remote agents: the backoff schedule, the pool's ledger, the transport mode and
the wire conversions (no sockets; tests/integration/test_remote_agents.py has the real thing)."""

from __future__ import annotations

import asyncio
import random

import pytest

from livebi.agents.nlp.llm import LLMFailure
from livebi.agents.nlp.parser import NotUnderstood, ParsedQuestion
from livebi.agents.remote.backoff import Backoff, PoolExhausted, PoolLedger, TransportMode
from livebi.agents.remote.wire import (
    RemoteAgentError, WireError, base_urls, error_message, loads, parsed_from_json, raise_error, result_from_json,
    result_to_json,
)
from livebi.agents.remote.wiring import degradation_data
from livebi.protocol import PUBLICATION_TYPES
from livebi.warehouse.base import QueryResult, QueryTimeout, WarehouseError
from livebi.warehouse.safety import UnsafeSQL


def test_backoff_grows_exponentially_to_its_ceiling_with_jitter_inside_half_to_full() -> None:
    backoff = Backoff(base_s=0.1, max_s=2.0, rng=random.Random(7))
    assert [backoff.ceiling(n) for n in range(7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0])
    for attempt in range(12):
        ceiling = backoff.ceiling(attempt)
        for _ in range(200):
            assert ceiling / 2 <= backoff.delay(attempt) <= ceiling
    assert backoff.ceiling(10_000) == 2.0  # no overflow on a long outage


def test_backoff_jitter_spreads_callers_and_is_reproducible_with_a_seed() -> None:
    delays = {round(Backoff(base_s=1.0, max_s=1.0, rng=random.Random(seed)).delay(0), 6) for seed in range(50)}
    assert len(delays) > 40, "fifty callers retrying at once do not retry at the same moment"
    one = [Backoff(base_s=0.1, max_s=5, rng=random.Random(3)).delay(n) for n in range(5)]
    two = [Backoff(base_s=0.1, max_s=5, rng=random.Random(3)).delay(n) for n in range(5)]
    assert one == two
    with pytest.raises(ValueError):
        Backoff(base_s=0, max_s=1)


def test_ledger_round_robins_and_refuses_beyond_its_maximum() -> None:
    ledger = PoolLedger(["ws://a", "ws://b", "ws://c"], max_connections=2)
    assert [ledger.next_url() for _ in range(7)] == ["ws://a", "ws://b", "ws://c", "ws://a", "ws://b", "ws://c", "ws://a"]
    ledger.take()
    ledger.take()
    assert ledger.free == 0
    with pytest.raises(PoolExhausted):
        ledger.take()
    ledger.give_back()
    ledger.take()
    ledger.give_back()
    ledger.give_back()
    with pytest.raises(RuntimeError):
        ledger.give_back()
    with pytest.raises(ValueError):
        PoolLedger([], max_connections=1)


def test_transport_falls_back_after_n_websocket_failures_in_a_row_and_returns_once() -> None:
    mode = TransportMode(failures_before_http=3)
    assert not mode.ws_failed() and not mode.ws_failed()
    assert not mode.ws_succeeded(), "a success in between resets the count, and was no change"
    assert [mode.ws_failed() for _ in range(3)] == [False, False, True]  # told once, at the switch
    assert mode.degraded and mode.transport == "http"
    assert not mode.ws_failed(), "more failures while on HTTP are not news"
    assert mode.ws_succeeded() and mode.transport == "websocket"
    assert not mode.ws_succeeded()


def test_agent_urls_of_every_scheme() -> None:
    assert base_urls("ws://127.0.0.1:8101") == ("ws://127.0.0.1:8101/agent", "http://127.0.0.1:8101/agent/call")
    assert base_urls("https://agents.example:443/x") == ("wss://agents.example:443/agent", "https://agents.example:443/agent/call")
    for bad in ("127.0.0.1:8101", "ftp://x", "ws:///agent"):
        with pytest.raises(ValueError):
            base_urls(bad)


def test_messages_are_bounded_json_objects() -> None:
    assert loads('{"id": "1"}', max_bytes=100) == {"id": "1"}
    for raw in ("[1]", "nope", "x" * 101):
        with pytest.raises(WireError):
            loads(raw, max_bytes=100)


def test_errors_keep_their_code_and_meaning_across_the_wire() -> None:
    def round_trip(exc: BaseException) -> BaseException:
        with pytest.raises(Exception) as caught:
            raise_error("data", error_message("c1", exc))
        return caught.value

    refusal = round_trip(UnsafeSQL("forbidden_sql", "only SELECT", suggestions=["SELECT …"]))
    assert isinstance(refusal, WarehouseError) and refusal.code == "forbidden_sql" and refusal.suggestions == ["SELECT …"]
    timeout = round_trip(QueryTimeout(3))
    assert isinstance(timeout, QueryTimeout) and timeout.message == "the query ran longer than 3 s and was stopped"
    nope = round_trip(NotUnderstood("not_understood", "what?", ["how many orders"]))
    assert isinstance(nope, NotUnderstood) and nope.suggestions == ["how many orders"]
    assert isinstance(round_trip(LLMFailure("timeout")), LLMFailure)
    bug = round_trip(ZeroDivisionError("x"))
    assert isinstance(bug, RemoteAgentError) and bug.code == "internal" and "x" not in str(bug).split(": ", 2)[-1]


def test_results_and_parses_round_trip_and_bad_ones_are_refused() -> None:
    result = QueryResult(columns=["region", "n"], column_kinds=["text", "number"], rows=[["EU", 3], ["US", 4]],
                         row_count=2, truncated=False, elapsed_ms=1.5)
    assert result_from_json(result_to_json(result)) == result
    for bad in ({}, {**result_to_json(result), "rows": [["EU"]]}, {**result_to_json(result), "column_kinds": ["text"]}):
        with pytest.raises(WireError):
            result_from_json(bad)
    parsed = ParsedQuestion(sql="SELECT 1", engine="parser", intent={}, explanation="e", assumptions=[],
                            alternatives=[], chart_hint={"kind": "kpi"}, confidence=0.7)
    assert parsed_from_json(parsed.to_dict()) == parsed


def test_degradation_publication_fits_the_protocol() -> None:
    model = PUBLICATION_TYPES["service_degradation"]
    down = model.model_validate(degradation_data("data", "http", True))
    assert down.active and down.component == "data_agent" and down.transport == "http" and down.mode == "http"
    assert not model.model_validate(degradation_data("data", "websocket", False)).active


def test_a_server_with_agent_urls_needs_the_token_and_good_urls(tmp_path) -> None:
    from livebi.agents.remote.wiring import RemoteAgents
    from livebi.config import Settings

    with pytest.raises(ValueError, match="agent_token"):
        RemoteAgents(Settings(data_dir=tmp_path, data_agent_urls=["ws://127.0.0.1:8102"]))
    with pytest.raises(ValueError, match="ws://"):
        RemoteAgents(Settings(data_dir=tmp_path, agent_token="x" * 16, viz_agent_urls=["127.0.0.1:8103"]))
    agents = RemoteAgents(Settings(data_dir=tmp_path, agent_token="x" * 16, data_agent_urls=["ws://127.0.0.1:8102"]))
    assert list(agents.pools) == ["data"] and agents.viz() is None
    local = object()
    assert agents.nlp(local) is local, "no URLs: the in-process agent itself"


def test_a_failed_url_is_skipped_while_it_backs_off_longer_after_each_failure() -> None:
    backoff = Backoff(base_s=1.0, max_s=8.0, rng=random.Random(1))
    ledger = PoolLedger(["ws://a", "ws://b"], max_connections=4)
    assert ledger.next_url(0.0) == "ws://a"
    first = ledger.failed("ws://a", 0.0, backoff)
    assert 0.5 <= first <= 1.0
    assert [ledger.next_url(0.1) for _ in range(4)] == ["ws://b"] * 4, "a dead agent among live ones gets no calls"
    assert ledger.backing_off("ws://b", 0.1) == 0 and ledger.backing_off("ws://a", 0.1) == pytest.approx(first - 0.1)
    again = ledger.failed("ws://a", first, backoff)
    assert 1.0 <= again - first <= 2.0, "longer after the second failure in a row"
    ledger.failed("ws://b", first, backoff)
    assert ledger.next_url(first) == min(("ws://a", "ws://b"), key=lambda u: ledger.backing_off(u, first)), \
        "all backing off: the one back soonest"
    assert {ledger.next_url(again + 10) for _ in range(2)} == {"ws://a", "ws://b"}
    ledger.succeeded("ws://a")
    assert ledger.backing_off("ws://a", first) == 0
    assert 0.5 <= ledger.failed("ws://a", 100.0, backoff) - 100.0 <= 1.0, "a success starts the schedule over"


async def test_pool_slots_refuse_beyond_the_maximum_and_free_ones_go_first_come_first_served() -> None:
    from livebi.agents.remote.pool import AgentPool
    from livebi.pipeline import AskFailed

    pool = AgentPool("data", ["ws://127.0.0.1:9"], token="x" * 16, max_connections=2, pool_timeout_s=0.05)
    await pool._acquire()
    await pool._acquire()
    with pytest.raises(AskFailed) as refused:
        await pool._acquire()
    assert (refused.value.code, refused.value.stage.value) == ("agent_pool_exhausted", "data_processing")
    assert "2 connections" in refused.value.message and not pool._waiters, "the one that gave up left the line"

    pool.pool_timeout_s = 5.0
    order: list[str] = []

    async def wait(name: str) -> None:
        await pool._acquire()
        order.append(name)

    first, second = asyncio.create_task(wait("first")), asyncio.create_task(wait("second"))
    await asyncio.sleep(0.01)
    late = asyncio.create_task(wait("cancelled"))
    await asyncio.sleep(0.01)
    late.cancel()  # a caller cancelled while waiting leaves the line without taking a slot
    for _ in range(2):
        pool.ledger.give_back()
        pool._wake()
        await asyncio.sleep(0.01)
    await asyncio.gather(first, second)
    assert order == ["first", "second"] and pool.ledger.free == 0 and not pool._waiters
