"""An OpenAI-compatible chat-completions server on 127.0.0.1 (a real HTTP server in a thread) for tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

Responder = Callable[[dict[str, Any]], "dict[str, Any] | tuple[int, dict[str, Any]]"]


def tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """An OpenAI tool call with the arguments string exactly as given."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def reply(content: str | None = None, tool_calls: list[dict[str, Any]] | None = None,
          usage: tuple[int, int] = (10, 5)) -> dict[str, Any]:
    """A chat.completion body."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"id": "cmpl-1", "object": "chat.completion", "model": "fake",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}],
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}}


class FakeOpenAI:
    """Serves `/v1/models` and `/v1/chat/completions`; `responder(body)` decides each completion."""

    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                body["_auth"] = self.headers.get("Authorization")
                with outer.lock:
                    outer.requests.append(body)
                out = outer.responder(body)
                status, payload = out if isinstance(out, tuple) else (200, out)
                self._send(status, payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def last_tool_results(body: dict[str, Any]) -> list[str]:
    """The contents of the tool messages after the last assistant message."""
    out: list[str] = []
    for msg in reversed(body["messages"]):
        if msg["role"] != "tool":
            break
        out.insert(0, msg["content"])
    return out


def turn_index(body: dict[str, Any]) -> int:
    """How many assistant turns the conversation already has."""
    return sum(1 for m in body["messages"] if m["role"] == "assistant")


def main() -> None:
    """Run a standalone fake whose episodes call `echo` once, then answer with the echoed text (for subprocess
    tests). Prints the base URL on stdout."""
    import sys
    import time

    delay = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0

    def responder(body: dict[str, Any]) -> dict[str, Any]:
        time.sleep(delay)
        if turn_index(body) == 0:
            user = next(m["content"] for m in body["messages"] if m["role"] == "user")
            return reply(tool_calls=[tool_call("c0", "echo", json.dumps({"text": user}))])
        return reply(content=last_tool_results(body)[0])

    with FakeOpenAI(responder) as fake:
        print(fake.base_url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
