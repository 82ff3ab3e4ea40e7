import json

import pytest

from livebi.protocol import ErrorCode, ProtocolError, json_schema, parse_op


def parse(obj, max_bytes=10_000):
    raw = obj if isinstance(obj, (str, bytes)) else json.dumps(obj)
    return parse_op(raw, max_bytes=max_bytes)


def code_of(obj, **kw):
    with pytest.raises(ProtocolError) as info:
        parse(obj, **kw)
    return info.value


def test_valid_ops_parse() -> None:
    assert parse({"id": 1, "op": "ping"}).op == "ping"
    op = parse({"id": 2, "op": "subscribe", "channel": "query:ab", "since": {"epoch": "e", "seq": 3}})
    assert op.since.seq == 3
    assert parse({"id": 3, "op": "ask", "question": "total revenue"}).question == "total revenue"


@pytest.mark.parametrize(
    "raw, code",
    [
        ("{not json", ErrorCode.bad_json),
        ("[1, 2]", ErrorCode.bad_json),
        ('"text"', ErrorCode.bad_json),
        (b"\xff\xfe", ErrorCode.bad_json),
        ({"id": 1, "op": "explode"}, ErrorCode.unknown_op),
        ({"id": 1}, ErrorCode.unknown_op),
        ({"id": 1, "op": "subscribe"}, ErrorCode.invalid_op),
        ({"id": "x", "op": "ping"}, ErrorCode.invalid_op),
        ({"id": 1, "op": "ping", "extra": 1}, ErrorCode.invalid_op),
        ({"id": 1, "op": "subscribe", "channel": "c", "since": {"epoch": "e", "seq": -1}}, ErrorCode.invalid_op),
    ],
)
def test_bad_frames_get_precise_codes(raw, code) -> None:
    assert code_of(raw).code == code


def test_error_keeps_the_op_id_when_there_is_one() -> None:
    err = code_of({"id": 7, "op": "subscribe"})
    reply = err.reply()
    assert reply["id"] == 7 and reply["ok"] is False
    assert reply["error"]["code"] == "invalid_op" and "channel" in reply["error"]["message"]
    assert reply["error"]["details"][0]["field"] == "channel"


def test_oversized_frame_is_rejected_before_parsing() -> None:
    err = code_of({"id": 1, "op": "ask", "question": "x" * 500}, max_bytes=100)
    assert err.code == ErrorCode.too_large


def test_schema_lists_every_op_error_and_close_code() -> None:
    schema = json_schema()
    text = json.dumps(schema)
    for op in ("auth", "subscribe", "unsubscribe", "ask", "cancel", "ping"):
        assert f'"{op}"' in text
    assert set(schema["error_codes"]) == {c.value for c in ErrorCode}
    assert "4001" in schema["close_codes"] and "4008" in schema["close_codes"]


def test_deeply_nested_json_is_bad_json_not_a_crash() -> None:
    err = code_of("[" * 30_000 + "]" * 30_000, max_bytes=100_000)
    assert err.code == ErrorCode.bad_json
