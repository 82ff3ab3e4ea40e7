"""Docs generated from code must match the committed files (so they cannot drift)."""

from pathlib import Path

from livebi.config import Settings, configuration_markdown
import json

from livebi.protocol import CLOSE_HELP, OP_NAMES, CloseCode, ErrorCode, json_schema

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_doc_is_generated_from_settings() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == configuration_markdown(), "run: livebi docs config > docs/configuration.md"


def test_sql_functions_doc_is_generated_from_the_allow_lists() -> None:
    from livebi.warehouse.functions import functions_markdown

    committed = (ROOT / "docs" / "sql-functions.md").read_text()
    assert committed == functions_markdown(), "run: livebi docs functions > docs/sql-functions.md"


def test_every_setting_has_help() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} has no description"


def test_protocol_doc_names_every_op_error_and_close_code() -> None:
    text = (ROOT / "docs" / "protocol.md").read_text()
    for op in OP_NAMES:
        assert f"`{op}`" in text, f"op {op} undocumented"
    for code in ErrorCode:
        assert f"`{code.value}`" in text, f"error code {code.value} undocumented"
    for code in CloseCode:
        assert f"`{int(code)}`" in text, f"close code {int(code)} undocumented"
    assert set(CLOSE_HELP) == {int(c) for c in CloseCode}
    for word in ("progress", "result", "error", "message_batch", "recovered", "rows_processed", "substage"):
        assert word in text


def test_exported_json_schema_matches_the_models() -> None:
    committed = json.loads((ROOT / "docs" / "protocol.schema.json").read_text())
    assert committed == json.loads(json.dumps(json_schema())), "run: livebi docs schema > docs/protocol.schema.json"
