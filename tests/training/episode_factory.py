"""Realistic recorded episodes for the training tests (tools, weather and code conversations)."""

from __future__ import annotations

import json
from typing import Any

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "weather__get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "units": {"type": "string", "enum": ["metric", "imperial"]}},
            "required": ["city"],
        },
    },
}
WRITE_TOOL = {
    "type": "function",
    "function": {
        "name": "files__write_file",
        "description": "Create or overwrite a file in the workspace.",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
            "required": ["path", "content"],
        },
    },
}
SYSTEM = {"role": "system", "content": "You are a helpful assistant that uses tools to solve tasks. " * 8}


def weather_messages(city: str, temp: int, answer: str | None = None, arguments: str | None = None
                     ) -> list[dict[str, Any]]:
    """A realistic weather episode: one call, one result, one answer."""
    args = arguments if arguments is not None else json.dumps({"city": city})
    return [
        SYSTEM,
        {"role": "user", "content": f"What is the temperature in {city} right now, in Celsius?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather__get_weather", "arguments": args}}]},
        {"role": "tool", "tool_call_id": "call_1", "name": "weather__get_weather",
         "content": json.dumps({"city": city, "temperature_c": temp, "conditions": "clear"})},
        {"role": "assistant", "content": answer or f"It is {temp} degrees Celsius in {city}."},
    ]


def code_messages(code: str) -> list[dict[str, Any]]:
    """A code episode whose final answer holds the solution in a fenced block."""
    return [
        SYSTEM,
        {"role": "user", "content": "Write a function add(a, b) that returns the sum."},
        {"role": "assistant", "content": f"Here is the solution:\n```python\n{code}\n```"},
    ]
