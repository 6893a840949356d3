"""A small trajectory database for the viewer tests, written through the real Store API."""

from __future__ import annotations

from pathlib import Path

from collector.store import Store

XSS = "<script>alert('x')</script><img src=x onerror=alert(1)>"


def _weather_messages(city: str, answer: str) -> list[dict[str, object]]:
    return [
        {"role": "system", "content": "You are a helpful assistant with tools."},
        {"role": "user", "content": f"What is the weather in {city}?"},
        {"role": "assistant", "content": None, "latency_s": 0.42, "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "weather__get_current_weather", "arguments": f'{{"location": "{city}", "unit": "C"}}'}}]},
        {"role": "tool", "tool_call_id": "c1", "name": "weather__get_current_weather",
         "content": f'{{"location": "{city}", "temperature": 12.5, "conditions": "cloudy"}}'},
        {"role": "assistant", "content": answer, "latency_s": 0.31},
    ]


def build_db(path: Path) -> dict[str, str]:
    """Runs: a scripted collect run, a local run with a malformed call, an XSS episode, a failed episode, and two
    eval runs (before/after). Returns the ids the tests look for."""
    store = Store(path)
    store.create_run("collect-expert", policy="scripted", model="expert", config={"suite": "builtin", "seed": 1})
    for i, city in enumerate(["Paris", "Berlin", "Oslo"]):
        task = {"id": f"weather-{i:04d}", "family": "weather", "split": "train"}
        eid = store.start_episode("collect-expert", task, 0, policy="scripted", model="expert")
        store.finish_episode(eid, fields={
            "status": "done", "passed": True, "score": 1.0, "reward": 1.0 + i * 0.1,
            "reward_components": {"success": 1.0, "efficiency": i * 0.1}, "verdict_details": {"expected": "12.5"},
            "turns": 2, "tool_calls": 1, "final_answer": f"It is 12.5 C in {city}.", "wall_time_s": 0.9},
            messages=_weather_messages(city, f"It is 12.5 C in {city}."),
            tool_calls=[{"call_id": "c1", "turn": 0, "server": "weather", "tool": "get_current_weather",
                         "arguments": f'{{"location": "{city}"}}', "result": "12.5", "is_error": 0,
                         "duration_s": 0.012}])
    files = {"id": "files-0001", "family": "files", "split": "train"}
    eid = store.start_episode("collect-expert", files, 0, policy="scripted", model="expert")
    store.finish_episode(eid, fields={"status": "done", "passed": True, "score": 1.0, "reward": 1.0, "turns": 1,
                                      "tool_calls": 0, "final_answer": "done"},
                         messages=[{"role": "user", "content": "Say done."}, {"role": "assistant", "content": "done"}])
    store.finish_run("collect-expert")

    store.create_run("collect-local", policy="local", model="SmolLM2-135M-Instruct", config={"temperature": 0.7})
    bad = {"id": "weather-0000", "family": "weather", "split": "train"}
    malformed = store.start_episode("collect-local", bad, 0, policy="local", model="SmolLM2-135M-Instruct")
    store.finish_episode(malformed, fields={
        "status": "done", "passed": False, "score": 0.0, "reward": -0.5, "reward_components": {"success": 0.0,
        "format": -0.5}, "turns": 2, "tool_calls": 1, "tool_errors": 1, "malformed_calls": 1,
        "final_answer": "I don't know"},
        messages=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": None, "malformed": True, "latency_s": 1.7, "tool_calls": [
                {"id": "m1", "type": "function", "function": {"name": "get_current_weather",
                                                              "arguments": "{location: Paris"}}]},
            {"role": "tool", "tool_call_id": "m1", "content": "error: arguments are not valid JSON"},
            {"role": "assistant", "content": "I don't know", "latency_s": 0.8}],
        tool_calls=[{"call_id": "m1", "turn": 0, "server": "weather", "tool": "get_current_weather",
                     "arguments": "{location: Paris", "result": "error", "is_error": 1, "malformed": 1,
                     "error_kind": "malformed_arguments", "duration_s": 0.0}])
    xss_task = {"id": "files-xss", "family": "files", "split": "train"}
    xss = store.start_episode("collect-local", xss_task, 0, policy="local", model="SmolLM2-135M-Instruct")
    store.finish_episode(xss, fields={"status": "done", "passed": False, "score": 0.0, "reward": 0.0, "turns": 1,
                                      "final_answer": XSS},
                         messages=[{"role": "user", "content": "Write some HTML."},
                                   {"role": "assistant", "content": XSS}])
    failed = store.start_episode("collect-local", {"id": "code-0007", "family": "code", "split": "train"}, 0,
                                 policy="local", model="SmolLM2-135M-Instruct")
    store.finish_episode(failed, fields={"status": "failed", "error_type": "ToolSessionError",
                                         "error_message": "exec server died"},
                         messages=[{"role": "user", "content": "Write fib."}])
    store.finish_run("collect-local")

    for label, model, passed in (("before", "SmolLM2-135M-Instruct", False), ("after", "checkpoint-sft", True)):
        run = f"eval-{label}"
        store.create_run(run, policy="local", model=model, config={"label": label}, kind="eval")
        for fam in ("weather", "files"):
            eid = store.start_episode(run, {"id": f"{fam}-test-1", "family": fam, "split": "test"}, 0,
                                      policy="local", model=model)
            store.finish_episode(eid, fields={"status": "done", "passed": passed or fam == "files",
                                              "reward": 1.0 if passed else 0.0, "turns": 2, "tool_calls": 1},
                                 messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])
        store.finish_run(run)
    store.close()
    return {"malformed": malformed, "xss": xss, "failed": failed}
