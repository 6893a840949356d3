"""The secret pattern set: every kind is redacted, the key name stays, ordinary text and code are left alone."""

from __future__ import annotations

import json

import pytest

from training.datasets.scrub import PATTERNS, find_secrets, scrub_text, scrub_value

PLANTED = [
    ("openai_key", "use sk-proj-Ab3dEfGhIjKlMnOpQrStUvWxYz0123 here", "sk-proj-"),
    ("anthropic_key", "key=sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx", "sk-ant-"),
    ("aws_access_key", "AWS id AKIAIOSFODNN7EXAMPLE.", "AKIAIOSFODNN7EXAMPLE"),
    ("github_token", "token ghp_0123456789abcdefghijABCDEFGHIJ012345", "ghp_"),
    ("slack_token", "xoxb-123456789012-abcdefABCDEF", "xoxb-"),
    ("google_api_key", "AIzaSyA-1234567890abcdefghijklmnopqrstu", "AIzaSy"),
    ("huggingface_token", "HF hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345", "hf_Ab"),
    ("stripe_key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39"),
    ("jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N", "eyJzdWIi"),
    ("bearer_token", "Authorization: Bearer abcDEF1234567890ghiJKL", "abcDEF1234567890"),
    ("url_credentials", "postgres://admin:Sup3rS3cret@db.internal:5432/app", "Sup3rS3cret"),
    ("password", 'password = "hunter2hunter2"', "hunter2"),
    ("password", '{"api_key": "abcd1234efgh"}', "abcd1234efgh"),
    ("private_key", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n-----END OPENSSH PRIVATE KEY-----",
     "b3BlbnNz"),
]


@pytest.mark.parametrize(("kind", "text", "secret"), PLANTED, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(PLANTED)])
def test_planted_secret_is_redacted_and_counted(kind: str, text: str, secret: str) -> None:
    cleaned, counts = scrub_text(text)
    assert secret not in cleaned
    assert f"[REDACTED:{kind}]" in cleaned
    assert counts[kind] == 1
    assert sum(counts.values()) == 1


def test_every_pattern_kind_is_covered_by_a_planted_case() -> None:
    assert {p.kind for p in PATTERNS} == {k for k, _, _ in PLANTED}


def test_key_name_survives_when_only_the_value_is_secret() -> None:
    cleaned, _ = scrub_text("Authorization: Bearer abcDEF1234567890ghiJKL")
    assert cleaned == "Authorization: Bearer [REDACTED:bearer_token]"


@pytest.mark.parametrize(
    "text",
    [
        "def check(password: str) -> bool:\n    return len(password) > 8",
        "The skeleton key opened the door.",
        "Temperature in Paris: 21 C, wind 12 km/h.",
        "https://example.org/path?q=1",
        "sk-short",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert scrub_text(text) == (text, {})


def test_scrubbing_is_idempotent() -> None:
    once, _ = scrub_text("password: hunter2hunter2 and sk-proj-Ab3dEfGhIjKlMnOpQrStUvWxYz0123")
    twice, counts = scrub_text(once)
    assert twice == once
    assert not counts


def test_scrub_value_walks_messages_and_arguments() -> None:
    messages = [
        {"role": "user", "content": "my key is sk-proj-Ab3dEfGhIjKlMnOpQrStUvWxYz0123"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "files__write_file",
                                              "arguments": {"path": ".env", "content": "API_KEY=abcd1234efgh"}}}]},
        {"role": "tool", "content": "ok", "tool_call_id": "1"},
    ]
    cleaned, counts = scrub_value(messages)
    assert counts == {"openai_key": 1, "password": 1}
    assert cleaned[1]["tool_calls"][0]["function"]["arguments"]["content"] == "API_KEY=[REDACTED:password]"
    assert messages[0]["content"].endswith("0123")  # the input is not modified
    assert find_secrets(messages[0]["content"]) == {"openai_key": 1}


@pytest.mark.parametrize(
    "key", ["password", "api_key", "apiKey", "X-Api-Key", "token", "secret", "client_secret", "github_token", "auth"]
)
def test_dict_values_under_secret_key_names_are_redacted(key: str) -> None:
    """A secret in a dict argument is found by its key name, whatever the value looks like (zero hits before)."""
    arguments = {"url": "https://example.org", key: "hunter2", "nested": [{key: "s3cr3t-value"}]}
    cleaned, counts = scrub_value(arguments)
    assert counts == {"secret_field": 2}
    assert cleaned == {"url": "https://example.org", key: "[REDACTED:secret_field]",
                       "nested": [{key: "[REDACTED:secret_field]"}]}
    assert scrub_value(cleaned) == (cleaned, {})  # idempotent


@pytest.mark.parametrize("key", ["max_tokens", "token_count", "secretary", "path", "passage", "author"])
def test_ordinary_keys_are_left_alone(key: str) -> None:
    assert scrub_value({key: "some value"}) == ({key: "some value"}, {})


def test_secret_fields_in_json_text_are_redacted() -> None:
    text = '{"login": "ada", "token": "plain-looking", "max_tokens": "512", "nested": {"clientSecret": "xyz12345"}}'
    cleaned, counts = scrub_text(text)
    assert counts == {"secret_field": 1, "password": 1}  # "clientSecret" is also one of the text patterns
    assert json.loads(cleaned) == {"login": "ada", "token": "[REDACTED:secret_field]", "max_tokens": "512",
                                   "nested": {"clientSecret": "[REDACTED:password]"}}
    assert scrub_text("token = tokens[0]") == ("token = tokens[0]", {})  # code is not a JSON field
