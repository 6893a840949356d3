"""Collection on a Ray cluster: workers run episodes, the driver is the run's single SQLite writer.

Each worker is a Ray actor holding its own MCP tool servers (a `mcpgym serve all` gateway of its own, or the servers
the run attached) and its own policy client, and runs `collector.collect.play_episode`, the very episode function
of the plain collector. A finished episode travels back to the driver, which writes it in one transaction, as the
plain collector does.

Exactly once: the driver inserts an episode's `running` row when it hands the episode to a worker and writes the
finished episode when the worker's answer arrives. When a worker (or its whole node) dies, every episode it had in
flight goes back to the queue and runs on another worker; a replacement worker is started wherever the cluster has
room. Nothing a lost worker did reaches the store, and an answer for an episode already recorded is dropped, so no
(task, sample) is stored twice. When the driver itself dies, the `running` rows it left are what `--resume` runs
again, as with the plain collector (Ray stops the driver's workers with it).

`ray` comes with the `scale` extra: `pip install 'mcpgym[scale]'`, on the driver and on every node.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.collect import (
    CollectConfig,
    ProgressFn,
    RunSummary,
    _build_policy,
    open_run,
    play_episode,
)
from collector.errors import CollectorError, ConfigError
from collector.loop import EpisodeResult, LoopConfig
from collector.policies import Policy
from collector.pool import ToolPool
from collector.servers import ServerSpec, load_server_config
from collector.settings import CollectorSettings
from collector.store import Store
from collector.tasks.model import Task

__all__ = ["EpisodeWorker", "RayStats", "collect_ray"]

_log = logging.getLogger(__name__)
ToolEvents = list[tuple[str, list[dict[str, Any]]]]


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("--ray needs the 'ray' package on the driver and every node: "
                          "pip install 'mcpgym[scale]'") from exc
    return ray


# Run beside a worker that started its own gateway: when the worker dies without closing it (its process killed,
# its node gone), the gateway (found by its workspace root in the command line) is stopped instead of living on.
_GATEWAY_WATCH = r"""
import os, signal, sys, time
worker, root = int(sys.argv[1]), sys.argv[2]
def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
def gateways():
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    data = fh.read()
                if root.encode() in data and b"serve" in data:
                    found.append(int(entry))
            except OSError:
                pass
    return found
while alive(worker) and os.path.isdir(root):
    time.sleep(1.0)
if os.path.isdir(root):
    pids = gateways()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.2)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
"""


def _watch_gateway(root: Path) -> None:
    """Start the watchdog that stops this worker's gateway if the worker dies without closing it."""
    import subprocess
    import sys

    subprocess.Popen([sys.executable, "-c", _GATEWAY_WATCH, str(os.getpid()), str(root)],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)


class EpisodeWorker:
    """One Ray worker (an async actor): its own tool pool and policy, `concurrency` episodes at once.

    Args:
        cfg: the collection (policy, model, limits).
        specs: the attached MCP servers, or None for a gateway of the worker's own.
        settings: timeouts and budgets, as the driver read them.
    """

    def __init__(self, cfg: CollectConfig, specs: dict[str, ServerSpec] | None, settings: CollectorSettings) -> None:
        self.cfg = cfg
        self.specs = specs
        self.settings = settings
        self.pool: ToolPool | None = None
        self.policy: Policy | None = None
        self.loop_cfg = LoopConfig(max_turns=cfg.max_turns, step_timeout_s=settings.step_timeout_s)
        self._tool_events: ToolEvents = []
        self._start_lock: asyncio.Lock | None = None

    def _on_tools(self, server: str, tools: list[dict[str, Any]]) -> list[str]:
        self._tool_events.append((server, tools))
        return []  # the driver records them and tells which definitions changed

    def _take_tool_events(self) -> ToolEvents:
        events, self._tool_events = self._tool_events, []
        return events

    async def start(self) -> dict[str, Any]:
        """Build the policy and start the tool pool. Returns where the worker runs and what it serves."""
        self._start_lock = self._start_lock or asyncio.Lock()
        async with self._start_lock:
            if self.pool is None:
                self.policy = _build_policy(self.cfg, self.settings)
                pool = ToolPool(self.specs, settings=self.settings, on_tools=self._on_tools)
                await pool.start()
                self.pool = pool
                if pool.gateway is not None:
                    _watch_gateway(pool.gateway.root)
        assert self.policy is not None and self.pool is not None
        import ray

        return {"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid(), "policy": self.policy.name,
                "model": self.policy.model, "servers": self.pool.server_names}

    async def list_tools(self) -> tuple[dict[str, list[dict[str, Any]]], ToolEvents]:
        """Every attached server's tool definitions (for the schema suite), and the listings to record."""
        assert self.pool is not None, "start() first"
        return await self.pool.list_tools(), self._take_tool_events()

    async def run(self, task: Task, sample: int) -> tuple[EpisodeResult, ToolEvents, float]:
        """Run one episode.

        Args:
            task: the task.
            sample: the sample index (the episode's identity with the task; the driver records it).

        Returns:
            The finished episode, the tool listings made since the last answer, and the worker's time for it (s).
        """
        assert self.pool is not None and self.policy is not None, "start() first"
        started = time.perf_counter()
        result = await play_episode(task, pool=self.pool, policy=self.policy, loop_cfg=self.loop_cfg)
        return result, self._take_tool_events(), time.perf_counter() - started

    async def close(self) -> None:
        """Close the policy client and stop the tool servers."""
        if self.policy is not None:
            await self.policy.aclose()
            self.policy = None
        if self.pool is not None:
            await self.pool.aclose()
            self.pool = None


@dataclass
class RayStats:
    """Where a Ray run's time went, as seen by the driver (for benchmarks and the run's log).

    Attributes:
        workers_started: workers started, replacements included.
        workers_lost: workers that died (or whose node died) during the run.
        episodes_requeued: episodes that were in flight on a lost worker and ran again.
        duplicates_dropped: answers for episodes already recorded (not written again).
        start_s: time until the first worker was ready.
        worker_s: sum of the workers' own time per episode.
        roundtrip_s: sum, over episodes, of the time from hand-out to the answer's arrival at the driver.
        store_s: the driver's time writing the store.
    """

    workers_started: int = 0
    workers_lost: int = 0
    episodes_requeued: int = 0
    duplicates_dropped: int = 0
    start_s: float = 0.0
    worker_s: float = 0.0
    roundtrip_s: float = 0.0
    store_s: float = 0.0
    nodes: set[str] = field(default_factory=set)


@dataclass
class _InFlight:
    worker: Any
    task: Task
    sample: int
    episode_id: str
    sent: float


def _worker_env(cfg: CollectConfig) -> dict[str, str]:
    """Environment variables the workers need from the driver (a worker inherits its node's, not the driver's)."""
    names = [cfg.api_key_env] if cfg.api_key_env else []
    names += [n for n in os.environ if n.startswith("MCPGYM_")]
    return {n: os.environ[n] for n in names if n and n in os.environ}


def _connect(ray: Any, address: str) -> bool:
    """Connect to (or, for `local`, start) a cluster unless connected already; True when this call connected."""
    if ray.is_initialized():
        return False
    if address == "local":
        ray.init(include_dashboard=False, logging_level=logging.WARNING)
    else:
        ray.init(address=address, logging_level=logging.WARNING)
    return True


def _default_workers(ray: Any, cpus: float) -> int:
    nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) >= cpus]
    return max(1, len(nodes))


class _Driver:
    """Hands episodes to workers, replaces lost workers and records every answer once."""

    def __init__(self, ray: Any, cfg: CollectConfig, specs: dict[str, ServerSpec] | None,
                 settings: CollectorSettings, *, worker_cpus: float, placement_timeout_s: float) -> None:
        self.ray = ray
        self.cfg = cfg
        self.settings = settings
        self.placement_timeout_s = placement_timeout_s
        self.stats = RayStats()
        options: dict[str, Any] = {"num_cpus": worker_cpus, "max_restarts": 0, "max_task_retries": 0,
                                   "max_concurrency": max(8, cfg.concurrency * 2)}
        env = _worker_env(cfg)
        if env:
            options["runtime_env"] = {"env_vars": env}
        self._actor_cls = ray.remote(EpisodeWorker).options(**options)
        self._specs = specs
        self.live: dict[Any, int] = {}  # worker -> episodes in flight
        self.starting: dict[Any, Any] = {}  # start() ref -> worker
        self.in_flight: dict[Any, _InFlight] = {}  # run() ref -> episode
        self.replacements_left = 0
        self.worker_cpus = worker_cpus
        self.policy_name = ""
        self.model_name = ""
        self._no_worker_since: float | None = None

    # ------------------------------------------------------------------ workers
    def spawn(self) -> None:
        worker = self._actor_cls.remote(self.cfg, self._specs, self.settings)
        self.starting[worker.start.remote()] = worker
        self.stats.workers_started += 1

    def lost(self, worker: Any, why: BaseException) -> None:
        """Forget a dead worker, put its episodes back in the queue and start a replacement."""
        if worker in self.live:
            del self.live[worker]
            self.stats.workers_lost += 1
            _log.warning("Ray worker lost (%s); its episodes run again elsewhere", type(why).__name__)
            _kill(self.ray, worker)
            if self.replacements_left <= 0:
                raise CollectorError(f"Ray workers keep dying (last: {type(why).__name__}: {why}); "
                                     "finished episodes are saved, continue with --resume")
            self.replacements_left -= 1
            self.spawn()

    def shutdown(self) -> None:
        """Close the live workers' servers and policies (30 s at most), then end every worker."""
        if self.live:
            closing = [w.close.remote() for w in self.live]
            self.ray.wait(closing, num_returns=len(closing), timeout=30)
        for w in [*self.live, *self.starting.values()]:
            _kill(self.ray, w)

    def _check_placement(self) -> None:
        if self.live:
            self._no_worker_since = None
            return
        now = time.monotonic()
        self._no_worker_since = self._no_worker_since or now
        if now - self._no_worker_since > self.placement_timeout_s:
            raise CollectorError(
                f"no Ray worker could be placed within {self.placement_timeout_s:g}s: each needs "
                f"{self.worker_cpus:g} free CPU on a live node; finished episodes "
                "are saved, continue with --resume")

    # ------------------------------------------------------------------ the run
    def wait_started(self, refs: list[Any], timeout: float) -> list[Any]:
        """Wait for the first workers; returns their start() answers (the first one's error is raised)."""
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=timeout)
        answers = []
        from ray.exceptions import RayTaskError

        for ref in ready:
            worker = self.starting.pop(ref)
            try:
                answers.append(self.ray.get(ref))
            except RayTaskError as exc:  # the policy or the tool servers could not start: the cause is the error
                cause = getattr(exc, "cause", None)
                raise cause if isinstance(cause, CollectorError) else CollectorError(
                    f"a Ray worker could not start: {exc}") from None
            self.live[worker] = 0
            self.stats.nodes.add(answers[-1]["node"])
        if not answers:
            raise CollectorError(f"no Ray worker started within {timeout:g}s (each needs a free CPU on a live node)")
        return answers

    def run(self, store: Store, summary: RunSummary, todo: list[tuple[Task, int]],
            on_progress: ProgressFn | None) -> None:
        from ray.exceptions import RayTaskError

        lost_errors = _lost_errors(self.ray)
        queue: deque[tuple[Task, int]] = deque(todo)
        recorded: set[str] = set()
        start = time.perf_counter()
        while queue or self.in_flight:
            for worker, busy in list(self.live.items()):  # hand out work
                while queue and busy < self.cfg.concurrency:
                    task, sample = queue.popleft()
                    t0 = time.perf_counter()
                    eid = store.start_episode(self.cfg.run, task.model_dump(mode="json"), sample,
                                              policy=self.policy_name, model=self.model_name)
                    self.stats.store_s += time.perf_counter() - t0
                    self.in_flight[worker.run.remote(task, sample)] = _InFlight(worker, task, sample, eid,
                                                                                time.perf_counter())
                    busy += 1
                self.live[worker] = busy
            self._check_placement()
            waiting = list(self.in_flight) + list(self.starting)
            if not waiting:
                continue
            ready, _ = self.ray.wait(waiting, num_returns=1, timeout=1.0)
            for ref in ready:
                if ref in self.starting:
                    worker = self.starting.pop(ref)
                    try:
                        info = self.ray.get(ref)
                    except lost_errors + (RayTaskError,) as exc:
                        self.live[worker] = 0
                        self.lost(worker, exc)
                        continue
                    self.live[worker] = 0
                    self.stats.nodes.add(info["node"])
                    continue
                job = self.in_flight.pop(ref)
                try:
                    result, events, worker_s = self.ray.get(ref)
                except lost_errors as exc:
                    queue.appendleft((job.task, job.sample))
                    self.stats.episodes_requeued += 1
                    self.lost(job.worker, exc)
                    continue
                except RayTaskError as exc:  # play_episode records its own failures: this is a bug, recorded
                    result = EpisodeResult.opening(job.task.messages)
                    result.fail("internal_error", str(exc)[-2000:])
                    events, worker_s = [], 0.0
                if job.worker in self.live:
                    self.live[job.worker] -= 1
                if job.episode_id in recorded:
                    self.stats.duplicates_dropped += 1
                    continue
                self.stats.roundtrip_s += time.perf_counter() - job.sent
                self.stats.worker_s += worker_s
                t0 = time.perf_counter()
                for server, tools in events:
                    summary.changed_tools.extend(
                        f"{server}.{n}" for n in store.record_tools(self.cfg.run, server, tools))
                store.finish_episode(job.episode_id, fields=result.store_fields(), messages=result.store_messages(),
                                     tool_calls=result.tool_call_rows)
                self.stats.store_s += time.perf_counter() - t0
                recorded.add(job.episode_id)
                summary.add(job.task.family, result)
                summary.wall_time_s = time.perf_counter() - start
                if on_progress is not None:
                    on_progress(summary, result)
        summary.wall_time_s = time.perf_counter() - start


def _kill(ray: Any, worker: Any) -> None:
    """End a worker; one that is gone already is fine."""
    try:
        ray.kill(worker, no_restart=True)
    except Exception as exc:  # noqa: BLE001 - a dead actor may raise anything here
        _log.debug("worker already gone: %s", exc)


def _lost_errors(ray: Any) -> tuple[type[BaseException], ...]:
    """Ray's errors meaning "the worker (or its node) is gone", not "the episode failed"."""
    from ray import exceptions as rx

    names = ("RayActorError", "ActorDiedError", "ActorUnavailableError", "WorkerCrashedError", "NodeDiedError",
             "ObjectLostError", "OwnerDiedError", "ActorUnschedulableError")
    return tuple(getattr(rx, n) for n in names if isinstance(getattr(rx, n, None), type))


def collect_ray(cfg: CollectConfig, *, on_progress: ProgressFn | None = None, worker_cpus: float = 1.0,
                placement_timeout_s: float = 300.0, stats: RayStats | None = None) -> RunSummary:
    """Run (or resume) a collection on a Ray cluster; the driver (this process) records every episode.

    Args:
        cfg: the collection; `cfg.ray` is the cluster's address (`auto`, `local` or `host:port`), `cfg.workers`
            the number of workers (default: one per node with `worker_cpus` CPUs), `cfg.concurrency` the episodes
            in flight per worker.
        on_progress: called with the running summary after each episode (and once, with None, at the start).
        worker_cpus: CPUs each worker reserves on its node.
        placement_timeout_s: how long the run may go without a live worker before it stops.
        stats: filled with where the time went and what was lost and re-run.

    Returns:
        The summary of this invocation.

    Raises:
        ConfigError: bad input, or `ray` is not installed.
        CollectorError: no worker could be started or placed, or workers keep dying.
        StoreError: the database is locked, corrupt or from a newer mcpgym.
    """
    cfg.validate()
    if cfg.ray is None:
        raise ConfigError("collect_ray needs cfg.ray: a Ray address, 'auto' or 'local'")
    ray = _import_ray()
    settings = cfg.settings or CollectorSettings()
    specs = load_server_config(cfg.servers) if isinstance(cfg.servers, (str, Path)) else cfg.servers
    fresh = not Path(cfg.db).exists()  # a database this call creates is removed again if no run got into it
    store = Store(cfg.db)
    connected = False
    driver: _Driver | None = None
    try:
        if store.has_run(cfg.run) and not cfg.resume:
            raise ConfigError(f"run {cfg.run!r} already exists in {cfg.db}; pass --resume to finish it, "
                              "or choose another --run name")
        if cfg.policy == "openai" and cfg.check_endpoint and cfg.base_url:
            from collector.policies.openai import check_endpoint

            asyncio.run(check_endpoint(cfg.base_url, api_key_env=cfg.api_key_env))
        connected = _connect(ray, cfg.ray)
        driver = _Driver(ray, cfg, dict(specs) if specs is not None else None, settings, worker_cpus=worker_cpus,
                         placement_timeout_s=placement_timeout_s)
        if stats is not None:
            driver.stats = stats
        n_workers = cfg.workers or _default_workers(ray, worker_cpus)
        driver.replacements_left = max(4, 2 * n_workers)
        t0 = time.perf_counter()
        for _ in range(n_workers):
            driver.spawn()
        answers = driver.wait_started(list(driver.starting), settings.server_start_timeout_s + 120)
        driver.stats.start_s = time.perf_counter() - t0
        first = next(iter(driver.live))
        driver.policy_name, driver.model_name = answers[0]["policy"], answers[0]["model"]
        pending_tools: list[tuple[str, list[dict[str, Any]]]] = []
        if cfg.task_list is not None:
            tasks = list(cfg.task_list)
        else:
            from collector.tasks.registry import is_live_suite, load_tasks

            tools_by_server = None
            if any(is_live_suite(s) for s in cfg.tasks):
                tools_by_server, pending_tools = ray.get(first.list_tools.remote())
            tasks = load_tasks(cfg.tasks, split=cfg.split, seed=cfg.seed, limit=cfg.limit,
                               tools_by_server=tools_by_server)
        summary, todo = open_run(cfg, store, policy=driver.policy_name, model=driver.model_name, tasks=tasks,
                                 server_names=answers[0]["servers"], pending_tools=pending_tools)
        if on_progress is not None:
            on_progress(summary, None)
        driver.run(store, summary, todo, on_progress)
        store.finish_run(cfg.run, "done")
        return summary
    finally:
        if driver is not None:
            driver.shutdown()
        if connected:
            ray.shutdown()
        empty = fresh and not store.run_ids()
        store.close()
        if empty:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{cfg.db}{suffix}").unlink(missing_ok=True)
