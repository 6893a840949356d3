"""The `openai` policy: any OpenAI-compatible chat-completions endpoint (vLLM, SGLang, llama.cpp, Ollama, OpenAI)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import httpx

from collector.errors import ConfigError, PolicyError
from collector.policies.base import Completion, TurnTokens
from collector.tasks.model import Task
from collector.types import Message, OpenAITool

__all__ = ["OpenAIPolicy", "check_endpoint"]

_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# vLLM's chat-completions options for the sampled tokens: logprobs per token, tokens as `token_id:N`, and the prompt's
# and the answer's token ids (`prompt_token_ids`, `choices[].token_ids`)
_TOKEN_FIELDS: dict[str, Any] = {"logprobs": True, "return_tokens_as_token_ids": True, "return_token_ids": True}


def _api_key(api_key_env: str | None) -> str | None:
    if not api_key_env:
        return None
    value = os.environ.get(api_key_env)
    if not value:
        raise ConfigError(f"--api-key-env names {api_key_env!r}, but that environment variable is not set or empty")
    return value


class OpenAIPolicy:
    """Chat completions with native `tools`; retries with exponential backoff on 429, 5xx and connection errors.

    Args:
        model: the model name the endpoint serves.
        base_url: the API root, e.g. `http://127.0.0.1:8000/v1` (requests go to `{base_url}/chat/completions`).
        api_key_env: the name of the environment variable holding the API key (None: no key is sent).
        temperature: sampling temperature.
        max_tokens: cap on generated tokens per turn (None: the endpoint's default).
        timeout_s: HTTP timeout of one request.
        max_retries: retries after the first attempt.
        backoff_s: first backoff delay (doubles each retry, capped at `backoff_max_s`; `Retry-After` is honoured).
        extra_body: extra request fields (e.g. `{"top_p": 0.9}`).
        tokens: ask for the sampled token ids, their logprobs and the prompt's token ids (vLLM's `logprobs`,
            `return_tokens_as_token_ids` and `return_token_ids`). None: ask, and stop asking for good if the
            endpoint refuses the request with an HTTP 400 that names one of them (the request is sent again
            without them); True: ask always; False: never.
        transport: an httpx transport (tests may pass one; by default a real connection pool).

    Raises:
        ConfigError: the named API-key variable is not set, or the base URL is not http(s).
    """

    name = "openai"

    def __init__(self, model: str, *, base_url: str, api_key_env: str | None = None, temperature: float = 0.7,
                 max_tokens: int | None = None, timeout_s: float = 120.0, max_retries: int = 4,
                 backoff_s: float = 0.5, backoff_max_s: float = 20.0, extra_body: dict[str, Any] | None = None,
                 transport: httpx.AsyncBaseTransport | None = None, tokens: bool | None = None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"--base-url must be an http:// or https:// URL such as http://127.0.0.1:8000/v1, "
                              f"got {base_url!r}")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.extra_body = dict(extra_body or {})
        self.tokens = tokens
        self._ask_tokens = tokens is not False
        headers = {"Content-Type": "application/json"}
        key = _api_key(api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.AsyncClient(
            headers=headers, timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)), transport=transport,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
        )

    def _body(self, messages: list[Message], tools: list[OpenAITool]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": self.temperature}
        if tools:
            body["tools"] = tools
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self._ask_tokens:
            body.update(_TOKEN_FIELDS)
        body.update(self.extra_body)
        return body

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            retry_after = response.headers.get("retry-after")
            try:
                if retry_after is not None:
                    return min(float(retry_after), self.backoff_max_s)
            except ValueError:
                pass
        return float(min(self.backoff_s * (2 ** attempt), self.backoff_max_s))

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}/chat/completions"
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            response: httpx.Response | None = None
            try:
                response = await self._client.post(url, content=json.dumps(body))
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if response.status_code == 200:
                    try:
                        data = response.json()
                    except ValueError as exc:
                        raise PolicyError(f"{url} returned a body that is not JSON: {response.text[:300]!r}") from exc
                    if not isinstance(data, dict):
                        raise PolicyError(f"{url} returned JSON that is not an object: {response.text[:300]!r}")
                    return data
                last = f"HTTP {response.status_code}: {response.text[:300]}"
                if (response.status_code == 400 and self.tokens is None and self._ask_tokens
                        and any(k in response.text for k in _TOKEN_FIELDS)):
                    self._ask_tokens = False  # an endpoint without vLLM's token fields: ask it plainly from now on
                    return await self._post({k: v for k, v in body.items() if k not in _TOKEN_FIELDS})
                if response.status_code not in _RETRY_STATUS:
                    raise PolicyError(f"{url} refused the request ({last})")
            if attempt < self.max_retries:
                await asyncio.sleep(self._delay(attempt, response))
        raise PolicyError(f"{url} failed after {self.max_retries + 1} attempts ({last})")

    async def complete(self, messages: list[Message], tools: list[OpenAITool], *, task: Task) -> Completion:
        """One assistant turn; tool-call arguments are kept exactly as the endpoint returned them.

        Raises:
            PolicyError: the endpoint is unreachable, refuses the request, or answers in an unknown shape.
        """
        start = time.perf_counter()
        data = await self._post(self._body(messages, tools))
        try:
            choice = data["choices"][0]
            raw = choice["message"]
        except (KeyError, IndexError, TypeError) as exc:
            raise PolicyError(f"the endpoint's answer has no choices[0].message: {json.dumps(data)[:300]}") from exc
        message: dict[str, Any] = {"content": raw.get("content")}
        calls = []
        for i, call in enumerate(raw.get("tool_calls") or []):
            fn = call.get("function") or {}
            args = fn.get("arguments", "")
            calls.append({
                "id": str(call.get("id") or f"call_{i}"),
                "type": "function",
                "function": {"name": str(fn.get("name", "")),
                             "arguments": args if isinstance(args, str) else json.dumps(args)},
            })
        if calls:
            message["tool_calls"] = calls
        usage = data.get("usage") or {}
        return Completion(
            message=message,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            latency_s=time.perf_counter() - start,
            tokens=_turn_tokens(data, choice),
        )

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()


def _token_id(token: Any) -> int | None:
    """`token_id:123` (vLLM's `return_tokens_as_token_ids`) -> 123."""
    if isinstance(token, str) and token.startswith("token_id:"):
        try:
            return int(token[len("token_id:"):])
        except ValueError:
            return None
    return None


def _turn_tokens(data: dict[str, Any], choice: dict[str, Any]) -> TurnTokens | None:
    """The sampled tokens of an answer, where the endpoint returned them (None otherwise, or when inconsistent).

    Token ids come from `choices[0].token_ids` (vLLM's `return_token_ids`) or else from the `token_id:N` strings of
    `choices[0].logprobs.content`; logprobs from that content; the prompt's ids from `prompt_token_ids`.
    """
    content = (choice.get("logprobs") or {}).get("content") if isinstance(choice.get("logprobs"), dict) else None
    entries = [e for e in content if isinstance(e, dict)] if isinstance(content, list) else []
    ids = choice.get("token_ids")
    if not (isinstance(ids, list) and all(isinstance(i, int) for i in ids)):
        from_logprobs = [_token_id(e.get("token")) for e in entries]
        ids = [i for i in from_logprobs if i is not None] if entries else None
        if ids is not None and len(ids) != len(entries):
            ids = None
    if not ids:
        return None
    logprobs = [float(e.get("logprob", 0.0)) for e in entries] if entries else None
    if logprobs is not None and len(logprobs) != len(ids):
        logprobs = None  # the two lists do not describe the same tokens: keep the ids alone
    prompt = data.get("prompt_token_ids")
    prompt_ids = prompt if isinstance(prompt, list) and all(isinstance(i, int) for i in prompt) else None
    return TurnTokens(token_ids=list(ids), logprobs=logprobs, prompt_token_ids=prompt_ids)


async def check_endpoint(base_url: str, *, api_key_env: str | None = None, timeout_s: float = 10.0) -> list[str]:
    """Check up front that an OpenAI-compatible endpoint answers `GET {base_url}/models`.

    Returns:
        The model ids it lists (may be empty).

    Raises:
        PolicyError: the endpoint is unreachable or refuses the request (the message says which, and how to fix).
        ConfigError: the API-key variable is not set.
    """
    headers = {}
    key = _api_key(api_key_env)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    url = f"{base_url.rstrip('/')}/models"
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        raise PolicyError(f"the OpenAI-compatible endpoint {base_url} is unreachable ({type(exc).__name__}: {exc}); "
                          "start the server or fix --base-url") from exc
    if response.status_code in (401, 403):
        raise PolicyError(f"{url} refused the API key (HTTP {response.status_code}); set --api-key-env to the "
                          "variable holding a valid key")
    if response.status_code != 200:
        raise PolicyError(f"{url} answered HTTP {response.status_code}: {response.text[:200]}")
    try:
        return [str(m.get("id")) for m in response.json().get("data", []) if isinstance(m, dict)]
    except (ValueError, AttributeError):
        return []
