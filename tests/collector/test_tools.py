"""MCP tool conversion, argument checking and output truncation."""

from __future__ import annotations

from collector.tools import ToolRef, mcp_tool_to_openai, namespaced, parse_arguments, truncate_output

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
          "required": ["city"]}


def test_mcp_tool_to_openai_shape() -> None:
    tool = {"name": "get_forecast", "description": "Forecast.", "inputSchema": SCHEMA, "annotations": {"x": 1}}
    assert mcp_tool_to_openai(tool) == {
        "type": "function", "function": {"name": "get_forecast", "description": "Forecast.", "parameters": SCHEMA}}
    renamed = mcp_tool_to_openai(tool, name="weather__get_forecast")
    assert renamed["function"]["name"] == "weather__get_forecast"


def test_mcp_tool_without_schema_gets_an_empty_object_schema() -> None:
    out = mcp_tool_to_openai({"name": "ping", "inputSchema": {}})
    assert out["function"]["parameters"] == {"type": "object", "properties": {}}
    assert out["function"]["description"] == ""


def test_namespacing_only_with_several_servers() -> None:
    assert namespaced("files", "read_text_file", several=True) == "files__read_text_file"
    assert namespaced("files", "read_text_file", several=False) == "read_text_file"


def test_parse_arguments_valid_and_empty() -> None:
    ref = ToolRef("f", "s", "f", SCHEMA)
    assert parse_arguments(ref, '{"city": "Oslo", "days": 2}') == ({"city": "Oslo", "days": 2}, None)
    args, err = parse_arguments(ref, "")
    assert args is None and err is not None and err.error_kind == "invalid_arguments"  # city is required


def test_parse_arguments_errors_are_readable() -> None:
    ref = ToolRef("weather__f", "weather", "f", SCHEMA)
    _, bad_json = parse_arguments(ref, '{"city": ')
    assert bad_json is not None and bad_json.error_kind == "invalid_json" and bad_json.malformed
    assert "not valid JSON" in bad_json.text and "weather__f" in bad_json.text
    _, not_obj = parse_arguments(ref, "[1, 2]")
    assert not_obj is not None and "must be a JSON object" in not_obj.text
    _, schema = parse_arguments(ref, '{"city": "Oslo", "days": 0}')
    assert schema is not None and schema.error_kind == "invalid_arguments"
    assert "days" in schema.text and "minimum" in schema.text


def test_truncation_keeps_head_tail_and_a_marker() -> None:
    text = "A" * 5000 + "Z" * 5000
    out, cut = truncate_output(text, 1000)
    assert cut and len(out) <= 1000
    assert out.startswith("A") and out.endswith("Z") and "truncated: 9" in out
    assert truncate_output("short", 1000) == ("short", False)
