"""Property-based fuzzing of the protocol decoder and the op handlers (hypothesis).

More than 100,000 generated frames go through a real session (real services: metadata store,
DuckDB demo warehouse, hub, pipeline): byte soup, text soup, JSON of every shape, and ops with
valid names but hostile or absurd field values. Every frame must be answered with a reply whose
error code is documented, never ``internal`` (a bug), and nothing may raise out of the session;
questions the frames start must end in a result or a documented error, never an internal one.
A smaller run goes through a real WebSocket, where every frame must be answered or the socket
closed with a documented close code.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import warnings
from typing import Any

import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import NonInteractiveExampleWarning
from hypothesis import strategies as st

from livebi.auth import User, hash_password
from livebi.config import Settings
from livebi.protocol import CLOSE_HELP, OP_NAMES, ErrorCode, dumps
from livebi.realtime.connection import Connection
from livebi.services import Services
from livebi.session import Session
from livebi.transports.websocket import new_outbox

from .conftest import free_port

DOCUMENTED_ERRORS = {code.value for code in ErrorCode} - {"internal"}
SEEDS_PER_EXAMPLE = 3  # frames hypothesis draws per example...
MUTANTS_PER_EXAMPLE = 147  # ...and frames derived from them by seeded mutation
EXAMPLES = int(os.environ.get("LIVEBI_FUZZ_EXAMPLES", "700"))  # x 150 frames = 105,000 frames

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
channels = st.one_of(
    st.sampled_from(["system", "query:abc", "dashboard:x", "user:nobody", "user:", "query:", "dash:1", "*", ""]),
    st.builds(lambda kind, ident: f"{kind}:{ident}", st.sampled_from(["query", "dashboard", "user", "x"]), st.text(max_size=70)),
    st.text(max_size=220),
)
hostile_text = st.one_of(
    st.text(max_size=60),
    st.sampled_from([
        "SELECT 1", "select * from orders", "DROP TABLE orders", "SELECT 1; SELECT 2", "((((((((((",
        "SELECT " + "(" * 300 + "1" + ")" * 300, "total revenue by region", "\x00", "' OR 1=1 --",
        "SELECT read_csv('/etc/passwd')", "WITH x AS (DELETE FROM orders RETURNING *) SELECT * FROM x",
    ]),
)
field_values = {
    "id": st.one_of(st.integers(min_value=-(2**63), max_value=2**63), json_values),
    "token": st.one_of(st.text(max_size=50), json_values),
    "channel": st.one_of(channels, json_values),
    "since": st.one_of(
        st.fixed_dictionaries({"epoch": st.text(max_size=10), "seq": st.integers(min_value=-5, max_value=2**64)}),
        json_values,
    ),
    "question": st.one_of(hostile_text, json_values),
    "sql": st.one_of(hostile_text, json_values),
    "warehouse": st.one_of(st.sampled_from(["demo", "nope", ""]), json_values),
    "chart": st.one_of(st.sampled_from(["bar", "pie", "table", "nonsense"]), json_values),
    "query_id": st.one_of(st.text(max_size=20), json_values),
    "state": st.one_of(st.dictionaries(st.text(max_size=5), json_scalars, max_size=3), json_values),
}


@st.composite
def op_frames(draw) -> str:
    op = draw(st.one_of(st.sampled_from([*OP_NAMES, "edit", "share", "Ask", ""]), json_values))
    obj: dict[str, Any] = {"op": op}
    for name in draw(st.lists(st.sampled_from(sorted(field_values)), max_size=5, unique=True)):
        obj[name] = draw(field_values[name])
    if draw(st.booleans()):
        obj["id"] = draw(st.integers(min_value=0, max_value=10**6))
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        obj[draw(st.text(max_size=6))] = draw(json_values)
    return json.dumps(obj)


frames = st.one_of(
    op_frames(),
    op_frames(),
    st.binary(max_size=80),
    st.text(max_size=80),
    st.builds(json.dumps, json_values),
    st.builds(lambda f: f[: len(f) // 2], op_frames()),  # cut in half
)


NASTY_VALUES: list[Any] = [
    None, True, 0, -1, 2**63, -(2**64), 1e308, "", " ", "x" * 300, "\u0000", "\ud800", "é" * 50, [], {},
    [[[[[[]]]]]], {"a": {"b": {"c": {}}}}, "system", "query:x", "SELECT 1", "SELECT 1; DROP TABLE orders",
    "((((", {"epoch": "e", "seq": -1}, {"epoch": 1, "seq": "x"}, list(range(50)),
]
OP_POOL = [*OP_NAMES, "edit", "share", None, 7]


def mutate(rnd: random.Random, frame: str | bytes) -> str | bytes:
    """A variant of ``frame``: a structural change when it is a JSON object, else byte-level."""
    try:
        obj = json.loads(frame)
    except (ValueError, UnicodeDecodeError):
        obj = None
    if isinstance(obj, dict) and rnd.random() < 0.8:
        choice = rnd.randrange(5)
        keys = list(obj)
        if choice == 0 and keys:
            obj[rnd.choice(keys)] = rnd.choice(NASTY_VALUES)
        elif choice == 1 and keys:
            del obj[rnd.choice(keys)]
        elif choice == 2:
            obj["op"] = rnd.choice(OP_POOL)
        elif choice == 3:
            obj["id"] = rnd.choice([rnd.randrange(10**6), -5, "1", None, 1.5, True, 2**70])
        else:
            obj[rnd.choice(["channel", "since", "sql", "question", "state", "token", "query_id", "zz"])] = rnd.choice(NASTY_VALUES)
        return json.dumps(obj)
    data = frame.encode("utf-8", "surrogatepass") if isinstance(frame, str) else frame
    if not data:
        return bytes([rnd.randrange(256)])
    at = rnd.randrange(len(data))
    choice = rnd.randrange(4)
    if choice == 0:
        data = data[:at]
    elif choice == 1:
        data = data[:at] + bytes([rnd.randrange(256)]) + data[at:]
    elif choice == 2:
        data = data[:at] + data[at:][::-1]
    else:
        data = data + data[at:]
    if rnd.random() < 0.5:
        return data.decode("utf-8", "replace")
    return data


class Harness:
    """Real services and one authenticated and one anonymous session on a private loop."""

    def __init__(self, settings: Settings) -> None:
        self.loop = asyncio.new_event_loop()
        self.services = Services(settings)
        self.published: list[str] = []
        self.frames = 0
        self.closes: list[tuple[int, str]] = []  # the server closed a fuzzed connection
        self.loop.run_until_complete(self._start())

    async def _start(self) -> None:
        await self.services.start()
        row = await self.services.store.add_user("fuzzer", hash_password("pw"))
        token = self.services.auth.signer.issue(User(row["id"], "fuzzer"))
        self.session = self._session()
        await self.session.authenticate(token)
        self.anonymous = self._session()

    def _session(self) -> Session:
        async def send(frame: str, _event_id: str | None) -> None:
            self.published.append(frame)

        async def close(code: int, reason: str) -> None:
            self.closes.append((code, reason))

        conn = Connection(f"fuzz{id(send)}", send=send, close=close, transport="ws", outbox=new_outbox(self.services))
        self.services.connections.add(conn)
        return Session(self.services, conn)

    def run(self, batch: list[str | bytes]) -> list[dict]:
        async def go() -> list[dict]:
            replies = []
            for i, raw in enumerate(batch):
                # Every tenth frame also goes to a session that never authenticated.
                for session in (self.session, self.anonymous) if i % 10 == 0 else (self.session,):
                    reply, replay = await session.process(raw)
                    await session.send_replay(replay)
                    replies.append(reply)
                self.frames += 1
            # Let questions the frames started finish (they are capped per user).
            while self.services.asks.running_count():
                await asyncio.sleep(0.005)
            await asyncio.sleep(0)  # let the writers flush
            return replies

        return self.loop.run_until_complete(go())

    def stop(self) -> None:
        for session in (self.session, self.anonymous):
            self.loop.run_until_complete(session.conn.close(1000, ""))
        self.loop.run_until_complete(self.services.stop())
        self.loop.close()


@pytest.fixture(scope="module")
def harness(tmp_path_factory, demo_duckdb) -> Harness:
    tmp = tmp_path_factory.mktemp("fuzz")
    settings = Settings(
        data_dir=tmp,
        warehouses={"demo": f"duckdb:///{demo_duckdb}"},
        store_url=f"sqlite:///{tmp / 'meta.db'}",
        secret_key="fuzz-secret",
        op_rate_per_s=0,
        query_timeout_s=5,
        port=free_port(),
    )
    h = Harness(settings)
    yield h
    h.stop()


def check(reply: dict) -> None:
    assert isinstance(reply, dict) and set(reply) >= {"id", "ok"}, reply
    assert reply["id"] is None or isinstance(reply["id"], int)
    if reply["ok"]:
        assert "data" in reply
    else:
        assert reply["error"]["code"] in DOCUMENTED_ERRORS, reply
        assert isinstance(reply["error"]["message"], str) and reply["error"]["message"]
    dumps(reply)  # every reply serializes


@pytest.mark.timeout(900)
@settings(
    max_examples=EXAMPLES, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
@given(
    seeds=st.lists(frames, min_size=SEEDS_PER_EXAMPLE, max_size=SEEDS_PER_EXAMPLE),
    rnd=st.randoms(use_true_random=False),
)
def test_every_frame_gets_a_documented_reply(harness: Harness, seeds: list[str | bytes], rnd: random.Random) -> None:
    batch = list(seeds)
    for _ in range(MUTANTS_PER_EXAMPLE):
        batch.append(mutate(rnd, rnd.choice(batch)))
    harness.published.clear()
    for reply in harness.run(batch):
        check(reply)
    assert not harness.closes, f"the server closed a fuzzed connection: {harness.closes}"
    for frame in harness.published:
        for message in _messages(frame):
            if message.get("type") == "error":
                assert message["data"]["code"] in DOCUMENTED_ERRORS, message


def test_the_fuzzer_sent_over_100_000_frames(harness: Harness) -> None:
    """Runs after the property test in this module: proves the run was as big as claimed."""
    if EXAMPLES < 700:
        pytest.skip(f"LIVEBI_FUZZ_EXAMPLES={EXAMPLES}: a shortened local run")
    assert harness.frames >= 100_000, harness.frames


def _messages(frame: str) -> list[dict]:
    message = json.loads(frame)
    return message["messages"] if message.get("type") == "message_batch" else [message]


async def test_fuzzed_frames_over_a_real_websocket(live_server) -> None:
    """Every frame over a real socket is answered; a frame beyond the transport's hard limit
    closes the socket with a documented code."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonInteractiveExampleWarning)
        batch = [frames.example() for _ in range(600)]
    token = await live_server.token("alice")
    ws = await websockets.connect(live_server.ws_url, max_size=None)
    await ws.send(json.dumps({"id": 1, "op": "auth", "token": token}))
    replies = 0
    async with asyncio.timeout(60):
        assert json.loads(await ws.recv())["ok"]
        for raw in batch:
            await ws.send(raw)
        while replies < len(batch):
            for message in _messages(await ws.recv()):
                if "ok" in message:
                    check(message)  # some are rate_limited: a documented answer too
                    replies += 1
        assert replies == len(batch)
        await ws.send("x" * (2 * 1024 * 1024))
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await ws.recv()
    assert ws.close_code == 1009 and ws.close_code in CLOSE_HELP, ws.close_code
