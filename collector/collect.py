"""A collection run: tasks x samples through a policy and MCP servers, N episodes in flight, recorded in SQLite."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from collector.errors import ConfigError, ToolSessionError
from collector.loop import EpisodeResult, LoopConfig, run_episode
from collector.policies import Policy, make_policy
from collector.pool import ToolPool
from collector.servers import ServerSpec, load_server_config
from collector.settings import CollectorSettings
from collector.store import Store
from collector.tasks.model import Task

__all__ = ["CollectConfig", "RunSummary", "collect_async", "play_episode", "run_collection"]

ProgressFn = Callable[["RunSummary", EpisodeResult | None], None]


@dataclass
class CollectConfig:
    """What to collect. The CLI builds one from its options; `mcpgym eval` and the demo build their own.

    Attributes:
        db: the trajectory database file.
        run: the run name (unique in the database; `resume` to finish an interrupted run).
        tasks: task suites: family names (weather, files, search, code, schema) or JSONL paths.
        task_list: explicit tasks instead of `tasks` (library use).
        policy: `openai`, `local` or `scripted`.
        model: the model name (openai: as served; local: built-in name or checkpoint directory).
        base_url: the OpenAI-compatible API root (openai policy).
        api_key_env: the environment variable holding the API key (openai policy).
        policy_options: further policy constructor arguments (e.g. temperature).
        policy_instance: an already built policy to use instead of `policy`/`model` (library use; not closed).
        servers: an MCP client config file or parsed specs; None starts `mcpgym serve all` on a loopback port.
        samples: episodes per task.
        concurrency: episodes in flight.
        max_turns: assistant turns per episode.
        seed: task generation and shuffle seed.
        split: `train`, `test` or None for both.
        limit: keep the first `limit` tasks.
        resume: finish an existing run: skip finished (task, sample) pairs, re-run the ones in flight at a crash.
        kind: `collect` or `eval` (stored on the run).
        check_endpoint: check an openai endpoint's reachability before starting.
        settings: timeouts and budgets (default: from the environment).
        ray: run the episodes on a Ray cluster: its address, `auto` (the cluster this machine belongs to) or `local`
            (start one on this machine); None collects in this process.
        workers: Ray workers (each with its own tool servers and policy client; `concurrency` episodes in flight
            each); None: one per cluster node with CPUs.
    """

    db: Path | str
    run: str
    tasks: list[str] = field(default_factory=lambda: ["weather"])
    task_list: list[Task] | None = None
    policy: str = "scripted"
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    policy_options: dict[str, Any] = field(default_factory=dict)
    policy_instance: Policy | None = None
    servers: str | Path | Mapping[str, ServerSpec] | None = None
    samples: int = 1
    concurrency: int = 4
    max_turns: int = 10
    seed: int = 0
    split: str | None = "train"
    limit: int | None = None
    resume: bool = False
    kind: str = "collect"
    check_endpoint: bool = True
    settings: CollectorSettings | None = None
    ray: str | None = None
    workers: int | None = None

    def validate(self) -> None:
        """Raise ConfigError naming the first bad field."""
        for name, value, low in (("samples", self.samples, 1), ("concurrency", self.concurrency, 1),
                                 ("max_turns", self.max_turns, 1)):
            if value < low:
                raise ConfigError(f"{name} must be >= {low}, got {value}")
        if not self.run or "/" in self.run:
            raise ConfigError(f"run name must be non-empty and contain no '/', got {self.run!r}")
        if self.split not in (None, "train", "test"):
            raise ConfigError(f"split must be 'train' or 'test', got {self.split!r}")
        if self.workers is not None and (self.ray is None or self.workers < 1):
            raise ConfigError(f"workers must be >= 1 and needs --ray, got {self.workers} with ray={self.ray!r}")
        if self.ray is not None and self.policy_instance is not None:
            raise ConfigError("a Ray collection builds its policy on every worker: give policy/model, not an instance")
        if self.policy_instance is None and self.policy == "openai" and not self.base_url:
            raise ConfigError("the openai policy needs --base-url (e.g. http://127.0.0.1:8000/v1) and --model")

    def record(self) -> dict[str, Any]:
        """The config as stored on the run (JSON-safe; no secrets: only the API key's variable name)."""
        skip = ("task_list", "policy_instance", "settings")  # not copied: a policy may hold a model and threads
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        data["policy_options"] = dict(self.policy_options)
        data["db"] = str(self.db)
        if isinstance(self.servers, Mapping):
            data["servers"] = {k: _redacted(v) for k, v in self.servers.items()}
        elif self.servers is not None:
            data["servers"] = str(self.servers)
        if self.task_list is not None:
            data["tasks"] = [t.id for t in self.task_list]
        if self.policy_instance is not None:
            data["policy"], data["model"] = self.policy_instance.name, self.policy_instance.model
        return data


def _redacted(spec: ServerSpec) -> dict[str, Any]:
    """A server spec for the run record: header and environment values (tokens, keys) replaced by '***'."""
    data = asdict(spec)
    data["headers"] = {k: "***" for k in spec.headers}
    data["env"] = {k: "***" for k in spec.env}
    return data


@dataclass
class RunSummary:
    """Counts and means of a run so far (and at its end)."""

    run: str
    total: int = 0
    skipped: int = 0
    done: int = 0
    failed: int = 0
    passed: int = 0
    reward_sum: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tool_calls: int = 0
    malformed_calls: int = 0
    wall_time_s: float = 0.0
    reset_in_flight: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    by_family: dict[str, dict[str, float]] = field(default_factory=dict)
    changed_tools: list[str] = field(default_factory=list)

    @property
    def finished(self) -> int:
        """Episodes finished in this invocation (done + failed)."""
        return self.done + self.failed

    @property
    def mean_reward(self) -> float:
        """Mean reward of the episodes done in this invocation."""
        return self.reward_sum / self.done if self.done else 0.0

    @property
    def pass_rate(self) -> float:
        """Passed / done."""
        return self.passed / self.done if self.done else 0.0

    @property
    def tokens_per_s(self) -> float:
        """Completion tokens per second of wall time."""
        return self.completion_tokens / self.wall_time_s if self.wall_time_s > 0 else 0.0

    def add(self, family: str, result: EpisodeResult) -> None:
        """Count one finished episode."""
        fam = self.by_family.setdefault(family, {"done": 0, "failed": 0, "passed": 0, "reward_sum": 0.0})
        self.prompt_tokens += result.prompt_tokens
        self.completion_tokens += result.completion_tokens
        self.tool_calls += result.tool_calls
        self.malformed_calls += result.malformed_calls
        if result.status == "failed":
            self.failed += 1
            fam["failed"] += 1
            key = result.error_type or "error"
            self.errors[key] = self.errors.get(key, 0) + 1
            return
        self.done += 1
        fam["done"] += 1
        passed = bool(result.verdict and result.verdict["passed"])
        self.passed += int(passed)
        fam["passed"] += int(passed)
        self.reward_sum += result.reward or 0.0
        fam["reward_sum"] += result.reward or 0.0


def _build_policy(cfg: CollectConfig, settings: CollectorSettings) -> Policy:
    options: dict[str, Any] = {"model": cfg.model}
    if cfg.policy == "openai":
        if not cfg.model:
            raise ConfigError("the openai policy needs --model (the model name the endpoint serves)")
        options.update(base_url=cfg.base_url, api_key_env=cfg.api_key_env, timeout_s=settings.openai_timeout_s,
                       max_retries=settings.openai_max_retries, backoff_s=settings.openai_backoff_s,
                       backoff_max_s=settings.openai_backoff_max_s)
    elif cfg.policy == "local":
        options.update(seed=cfg.seed, cache_dir=settings.models_dir)
    elif cfg.policy == "scripted":
        options = {}
    options.update(cfg.policy_options)
    return make_policy(cfg.policy, **options)


async def play_episode(task: Task, *, pool: ToolPool, policy: Policy, loop_cfg: LoopConfig) -> EpisodeResult:
    """Run one episode in a fresh tool session of `pool`; never raises for the episode's own failures.

    The one episode function of every collection: the plain collector calls it between the store's start and finish
    of the episode, and each Ray worker calls it and sends the result back to the driver, which records it.

    Args:
        task: the task.
        pool: the tool pool the session is opened on.
        policy: produces assistant turns.
        loop_cfg: turn and timeout limits.

    Returns:
        The finished episode (status `done` or `failed`; server, config and internal errors are recorded in it).
    """
    started = time.perf_counter()
    try:
        async with pool.session(task.servers, tools=task.tools, wait_close=False) as session:
            result = await run_episode(task, policy, session, config=loop_cfg)
    except ToolSessionError as exc:
        result = EpisodeResult.opening(task.messages)
        result.fail("server_error", str(exc))
    except ConfigError as exc:
        result = EpisodeResult.opening(task.messages)
        result.fail("config_error", str(exc))
    except Exception as exc:  # noqa: BLE001 - one episode's bug must not stop the run; it is recorded
        result = EpisodeResult.opening(task.messages)
        result.fail("internal_error", f"{type(exc).__name__}: {exc}")
    if result.wall_time_s == 0.0:
        result.wall_time_s = time.perf_counter() - started
    return result


async def _one(task: Task, sample: int, *, store: Store, pool: ToolPool, policy: Policy, run: str,
               loop_cfg: LoopConfig) -> EpisodeResult:
    eid = store.start_episode(run, task.model_dump(mode="json"), sample, policy=policy.name, model=policy.model)
    result = await play_episode(task, pool=pool, policy=policy, loop_cfg=loop_cfg)
    store.finish_episode(eid, fields=result.store_fields(), messages=result.store_messages(),
                         tool_calls=result.tool_call_rows)
    return result


RESUME_FIELDS = ("tasks", "split", "policy", "model", "seed", "limit")


def check_resume(cfg: CollectConfig, store: Store) -> None:
    """Refuse to resume a run with another configuration than the one it recorded.

    The fields that decide which episodes a run holds are compared: the tasks (suites, or task ids), split, policy,
    model, seed and limit. A field the run did not record (an older run) is not compared.

    Raises:
        ConfigError: a field differs; the message names each one with its recorded and its new value.
    """
    if not cfg.resume or not store.has_run(cfg.run):
        return
    recorded = store.get_run(cfg.run)["config"]
    now = json.loads(json.dumps(cfg.record(), default=str))
    differing = [f for f in RESUME_FIELDS if f in recorded and recorded[f] != now.get(f)]
    if differing:
        changes = "; ".join(f"{f}: recorded {recorded[f]!r}, now {now.get(f)!r}" for f in differing)
        raise ConfigError(
            f"cannot resume run {cfg.run!r}: its configuration differs ({changes}); resume with the recorded "
            "values, or collect under another --run name"
        )


def open_run(cfg: CollectConfig, store: Store, *, policy: str, model: str, tasks: list[Task],
             server_names: list[str], pending_tools: list[tuple[str, list[dict[str, Any]]]]
             ) -> tuple[RunSummary, list[tuple[Task, int]]]:
    """Create (or re-open) the run and list the (task, sample) pairs still to run.

    Args:
        cfg: the collection.
        store: the open store (the run's single writer).
        policy: the policy's name, as recorded.
        model: the model's name, as recorded.
        tasks: the tasks of the run.
        server_names: the attached MCP servers.
        pending_tools: (server, tools) listed before the run existed, recorded now.

    Returns:
        The run's summary so far (totals, skipped, in-flight episodes reset) and the pairs to run.

    Raises:
        ConfigError: a task needs a server that is not attached, or a resumed run recorded another configuration.
    """
    needed = sorted({s for t in tasks for s in t.servers} - set(server_names))
    if needed:
        raise ConfigError(f"the tasks need MCP servers {needed}, which are not attached; attached: {server_names}")
    check_resume(cfg, store)
    store.create_run(cfg.run, policy=policy, model=model, config=cfg.record(), kind=cfg.kind)
    for server, tools in pending_tools:
        store.record_tools(cfg.run, server, tools)
    summary = RunSummary(run=cfg.run)
    if cfg.resume:
        summary.reset_in_flight = store.reset_in_flight(cfg.run)
    done = store.done_keys(cfg.run)
    work = [(t, k) for t in tasks for k in range(cfg.samples)]
    todo = [(t, k) for t, k in work if (t.id, k) not in done]
    summary.total, summary.skipped = len(work), len(work) - len(todo)
    return summary, todo


async def collect_async(cfg: CollectConfig, *, on_progress: ProgressFn | None = None) -> RunSummary:
    """The async body of `run_collection` (for callers already inside an event loop)."""
    cfg.validate()
    settings = cfg.settings or CollectorSettings()
    specs = load_server_config(cfg.servers) if isinstance(cfg.servers, (str, Path)) else cfg.servers
    fresh = not Path(cfg.db).exists()  # a database this call creates is removed again if no run got into it
    store = Store(cfg.db)
    pool: ToolPool | None = None
    policy: Policy | None = None
    try:
        if store.has_run(cfg.run) and not cfg.resume:
            raise ConfigError(f"run {cfg.run!r} already exists in {cfg.db}; pass --resume to finish it, "
                              "or choose another --run name")
        check_resume(cfg, store)
        if cfg.policy_instance is None and cfg.policy == "openai" and cfg.check_endpoint and cfg.base_url:
            from collector.policies.openai import check_endpoint

            await check_endpoint(cfg.base_url, api_key_env=cfg.api_key_env)
        policy = cfg.policy_instance or _build_policy(cfg, settings)
        pending_tools: list[tuple[str, list[dict[str, Any]]]] = []
        run_created = False

        def on_tools(server: str, tools: list[dict[str, Any]]) -> list[str]:
            if not run_created:
                pending_tools.append((server, tools))
                return []
            return store.record_tools(cfg.run, server, tools)

        pool = ToolPool(specs, settings=settings, on_tools=on_tools)
        await pool.start()
        if cfg.task_list is not None:
            tasks = list(cfg.task_list)
        else:
            from collector.tasks.registry import is_live_suite, load_tasks

            live = any(is_live_suite(s) for s in cfg.tasks)
            tools_by_server = await pool.list_tools() if live else None
            tasks = load_tasks(cfg.tasks, split=cfg.split, seed=cfg.seed, limit=cfg.limit,
                               tools_by_server=tools_by_server)
        summary, todo = open_run(cfg, store, policy=policy.name, model=policy.model, tasks=tasks,
                                 server_names=pool.server_names, pending_tools=pending_tools)
        run_created = True
        loop_cfg = LoopConfig(max_turns=cfg.max_turns, step_timeout_s=settings.step_timeout_s)
        sem = asyncio.Semaphore(cfg.concurrency)
        start = time.perf_counter()
        if on_progress is not None:
            on_progress(summary, None)

        async def worker(task: Task, sample: int) -> None:
            assert pool is not None and policy is not None
            async with sem:
                result = await _one(task, sample, store=store, pool=pool, policy=policy, run=cfg.run,
                                    loop_cfg=loop_cfg)
            summary.add(task.family, result)
            summary.wall_time_s = time.perf_counter() - start
            if on_progress is not None:
                on_progress(summary, result)

        await asyncio.gather(*(worker(t, k) for t, k in todo))
        summary.wall_time_s = time.perf_counter() - start
        summary.changed_tools = [f"{s}.{n}" for s, n in pool.changed_tools]
        store.finish_run(cfg.run, "done")
        return summary
    finally:
        if policy is not None and cfg.policy_instance is None:
            await policy.aclose()
        if pool is not None:
            await pool.aclose()
        empty = fresh and not store.run_ids()
        store.close()
        if empty:  # e.g. an unknown suite: no empty database file is left behind
            for suffix in ("", "-wal", "-shm"):
                Path(f"{cfg.db}{suffix}").unlink(missing_ok=True)


def terminate_as_interrupt() -> None:
    """Make SIGTERM (a plain `kill`) stop a run the way Ctrl-C does, so the servers it started are stopped.

    The signal is re-sent as SIGINT: `asyncio.run` cancels its main task on SIGINT and raises KeyboardInterrupt once
    every task has unwound, whereas an exception raised in a handler could land inside one episode's task and be
    recorded as that episode's failure while the run went on. A process started in the background by a
    non-interactive shell (`nohup`, CI jobs) inherits SIGINT ignored, and `asyncio.run` then leaves SIGINT alone:
    the interpreter's own SIGINT handler is put back first, or a SIGTERM would be ignored too. Call it from the main
    thread.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda signum, frame: os.kill(os.getpid(), signal.SIGINT))


def run_collection(config: CollectConfig, *, on_progress: ProgressFn | None = None) -> RunSummary:
    """Run (or resume) a collection and record every episode.

    Args:
        config: what to collect.
        on_progress: called with the running summary after each episode (and once, with None, at the start).

    Returns:
        The summary of this invocation.

    Raises:
        ConfigError: bad input (unknown suite, bad server config, existing run without resume, ...).
        StoreError: the database is locked, corrupt or from a newer mcpgym.
        PolicyError: the endpoint is unreachable.
        ToolSessionError: the managed server could not start.
    """
    if config.ray is not None:
        from collector.distributed import collect_ray

        return collect_ray(config, on_progress=on_progress)
    return asyncio.run(collect_async(config, on_progress=on_progress))
