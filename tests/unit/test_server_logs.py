import logging

from livebi.server import RedactTokens


def test_tokens_in_log_lines_are_masked() -> None:
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, '%s - "WebSocket %s" [accepted]', ("127.0.0.1:5", "/ws?token=abc.def&x=1"), None)
    RedactTokens().filter(record)
    assert record.getMessage() == '127.0.0.1:5 - "WebSocket /ws?token=***&x=1" [accepted]'
