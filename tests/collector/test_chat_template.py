"""The shared chat template: exact ChatML rendering, tool-call parsing, assistant masks, TRL interoperability."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from local_model import loaded_model

from collector.chat_template import (
    CHAT_TEMPLATE,
    ParsedCompletion,
    parse_completion,
    render_prompt,
    to_training_messages,
)

TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
TOOLS_JSON = json.dumps(TOOLS[0])

CONVERSATION: list[Any] = [
    {"role": "system", "content": "Use tools."},
    {"role": "user", "content": "Paris and Rome?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}},
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "name": "get_weather", "content": "18 C"},
    {"role": "tool", "tool_call_id": "c2", "name": "get_weather", "content": "24 C"},
    {"role": "assistant", "content": "Paris 18 C, Rome 24 C."},
]

SYSTEM_WITH_TOOLS = (
    "<|im_start|>system\nUse tools.\n\n# Tools\n\nYou may call one or more functions to assist with the user query."
    "\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
    + TOOLS_JSON
    + "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n'
    "</tool_call><|im_end|>\n"
)
TOOL_TURN = (
    "<|im_start|>assistant\n"
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call><|im_end|>\n'
)
RESULTS_TURN = "<|im_start|>user\n<tool_response>\n18 C\n</tool_response>\n<tool_response>\n24 C\n</tool_response><|im_end|>\n"


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return loaded_model()[1]


def test_render_exact_chatml_structure(tokenizer: Any) -> None:
    expected = (
        SYSTEM_WITH_TOOLS
        + "<|im_start|>user\nParis and Rome?<|im_end|>\n"
        + TOOL_TURN
        + RESULTS_TURN
        + "<|im_start|>assistant\nParis 18 C, Rome 24 C.<|im_end|>\n"
        + "<|im_start|>assistant\n"
    )
    assert render_prompt(tokenizer, CONVERSATION, TOOLS) == expected


def test_render_without_tools_uses_plain_chatml_and_neutral_default_system(tokenizer: Any) -> None:
    text = render_prompt(tokenizer, [{"role": "user", "content": "Hi"}], [])
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_render_does_not_modify_the_messages(tokenizer: Any) -> None:
    before = copy.deepcopy(CONVERSATION)
    render_prompt(tokenizer, CONVERSATION, TOOLS)
    assert CONVERSATION == before


def test_render_rejects_unknown_role(tokenizer: Any) -> None:
    with pytest.raises(ValueError, match="role 'narrator'.*accepted roles: system, user, assistant, tool"):
        render_prompt(tokenizer, [{"role": "narrator", "content": "x"}], [])  # type: ignore[list-item]


def test_parse_valid_single_call_keeps_arguments_text_exactly() -> None:
    parsed = parse_completion('<tool_call>\n{"name": "get_weather", "arguments": {"city":  "Paris"}}\n</tool_call>')
    assert parsed.content is None
    assert parsed.malformed == []
    [call] = parsed.tool_calls
    assert call["type"] == "function"
    assert call["id"].startswith("call_")
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":  "Paris"}'}


def test_parse_parallel_calls_get_fresh_distinct_ids_and_keep_the_text() -> None:
    text = (
        "Checking both.\n"
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome", "units": ["C"]}}\n</tool_call>'
        "<|im_end|>"
    )
    parsed = parse_completion(text)
    assert parsed.content == "Checking both."
    assert [c["function"]["arguments"] for c in parsed.tool_calls] == [
        '{"city": "Paris"}',
        '{"city": "Rome", "units": ["C"]}',
    ]
    assert len({c["id"] for c in parsed.tool_calls}) == 2
    again = parse_completion(text)
    assert {c["id"] for c in again.tool_calls}.isdisjoint({c["id"] for c in parsed.tool_calls})


def test_parse_invalid_json_is_kept_verbatim_and_marked() -> None:
    inner = '\n{"name": "get_weather", "arguments": {city: Paris}}\n'
    parsed = parse_completion(f"<tool_call>{inner}</tool_call>")
    [call] = parsed.tool_calls
    assert call["function"] == {"name": "get_weather", "arguments": inner}
    assert parsed.malformed == [{"kind": "invalid_json", "text": inner, "index": 0}]


def test_parse_unrecoverable_name_is_empty() -> None:
    parsed = parse_completion("<tool_call>get_weather(Paris)</tool_call>")
    assert parsed.tool_calls[0]["function"] == {"name": "", "arguments": "get_weather(Paris)"}
    assert parsed.malformed[0]["kind"] == "invalid_json"


def test_parse_missing_name_and_bad_arguments_are_marked() -> None:
    parsed = parse_completion(
        '<tool_call>{"arguments": {"city": "Paris"}}</tool_call>'
        '<tool_call>{"name": "get_weather", "arguments": "Paris"}</tool_call>'
        '<tool_call>{"name": "get_weather"}</tool_call>'
    )
    assert [m["kind"] for m in parsed.malformed] == ["missing_name", "invalid_arguments", "invalid_arguments"]
    assert [c["function"]["name"] for c in parsed.tool_calls] == ["", "get_weather", "get_weather"]
    assert parsed.tool_calls[1]["function"]["arguments"] == '{"name": "get_weather", "arguments": "Paris"}'


def test_parse_unclosed_tag_keeps_the_rest_of_the_output() -> None:
    parsed = parse_completion('Sure. <tool_call>\n{"name": "get_weather", "arguments": {"city": "Par')
    assert parsed.content == "Sure."
    assert parsed.tool_calls[0]["function"]["name"] == "get_weather"
    assert parsed.malformed == [
        {"kind": "unclosed_tag", "text": '\n{"name": "get_weather", "arguments": {"city": "Par', "index": 0}
    ]


def test_parse_without_tags_is_plain_content() -> None:
    text = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
    parsed = parse_completion(text + "<|im_end|>trailing")
    assert parsed == ParsedCompletion(content=text, tool_calls=[], malformed=[])
    assert parsed.to_message() == {"role": "assistant", "content": text}
    assert parse_completion("   ").to_message() == {"role": "assistant", "content": ""}


@pytest.mark.parametrize(
    "raw",
    [
        'Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        '<tool_call>\n{"name": "get_weather", "arguments": {city: Paris}}\n</tool_call>',
        "<tool_call>oops</tool_call>",
        '<tool_call>\n{"name": "get_weather"}\n</tool_call>',
        "Just text.",
    ],
)
def test_parsed_turn_renders_back_to_the_raw_output(tokenizer: Any, raw: str) -> None:
    """What the model emitted is what it sees in the next prompt, malformed calls included."""
    history: list[Any] = [{"role": "user", "content": "Weather?"}]
    prompt = render_prompt(tokenizer, history, TOOLS)
    turn = parse_completion(raw).to_message()
    after = render_prompt(tokenizer, [*history, turn, {"role": "user", "content": "ok"}], TOOLS)
    assert after.startswith(prompt + raw + "<|im_end|>\n<|im_start|>user\nok")


def test_to_training_messages_turns_arguments_into_dicts_and_keeps_malformed_verbatim() -> None:
    malformed = parse_completion('<tool_call>{"name": "get_weather", "arguments": "Paris"}</tool_call>')
    messages: list[Any] = [*CONVERSATION, malformed.to_message(), {"role": "tool", "content": None}]
    before = copy.deepcopy(messages)
    out = to_training_messages(messages)
    assert messages == before
    assert out[2]["tool_calls"][0] == {
        "id": "c1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
    }
    assert out[2]["content"] is None
    assert out[3] == {"role": "tool", "content": "18 C", "tool_call_id": "c1", "name": "get_weather"}
    assert out[6]["tool_calls"][0]["function"]["arguments"] == '{"name": "get_weather", "arguments": "Paris"}'
    assert out[7] == {"role": "tool", "content": ""}
    with pytest.raises(ValueError, match="empty"):
        to_training_messages([])


def test_assistant_mask_covers_exactly_the_assistant_turns(tokenizer: Any) -> None:
    out = tokenizer.apply_chat_template(
        to_training_messages(CONVERSATION),
        tools=TOOLS,
        chat_template=CHAT_TEMPLATE,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    ids, mask = out["input_ids"], out["assistant_masks"]
    assert len(ids) == len(mask)
    masked = [i for i, m in zip(ids, mask, strict=True) if m]
    unmasked = [i for i, m in zip(ids, mask, strict=True) if not m]
    first_turn = TOOL_TURN.removeprefix("<|im_start|>assistant")
    assert tokenizer.decode(masked) == first_turn + "\nParis 18 C, Rome 24 C.<|im_end|>\n"
    assert tokenizer.decode(unmasked) == (
        SYSTEM_WITH_TOOLS
        + "<|im_start|>user\nParis and Rome?<|im_end|>\n<|im_start|>assistant"
        + RESULTS_TURN
        + "<|im_start|>assistant"
    )
    runs = sum(1 for i, m in enumerate(mask) if m and (i == 0 or not mask[i - 1]))
    assert runs == 2  # one contiguous span per assistant turn


def test_trl_treats_the_template_as_training_ready_and_parses_its_tool_calls(tokenizer: Any) -> None:
    from trl.chat_template_utils import get_training_chat_template, parse_response, supports_tool_calling

    assert supports_tool_calling(tokenizer)
    assert get_training_chat_template(tokenizer) is None  # generation markers present, prefix-preserving
    text = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>'
    prefix = tokenizer(render_prompt(tokenizer, CONVERSATION[:2], TOOLS), add_special_tokens=False)["input_ids"]
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    parsed = parse_response(tokenizer, ids, prefix=prefix)
    assert parsed["tool_calls"] == [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    ]
