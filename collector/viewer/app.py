"""The trajectory viewer: a read-only FastAPI app with server-rendered pages and a JSON twin for each."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import time
from collections.abc import Iterator, Sequence
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import jinja2
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers, MutableHeaders, QueryParams
from starlette.middleware import Middleware
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from collector.errors import ConfigError, StoreError
from collector.store import Store
from collector.viewer import charts as ch
from collector.viewer import queries as q
from collector.viewer.episode import episode_view
from mcp_servers.gateway.guard import HostOriginMiddleware, HostPolicy, is_loopback

__all__ = ["TOKEN_ENV", "create_app", "serve"]

TOKEN_ENV = "MCPGYM_VIEWER_TOKEN"

_HERE = Path(__file__).parent
# No script at all: pages are plain HTML and CSS, so model output shown on them can never run.
_CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'")


class NotFound(Exception):
    """A run or episode the store does not hold."""


def _fmt_time(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) if ts else "—"


def _fmt_num(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _fmt_pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _fmt_dur(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,  # everything, whatever the file name: episodes hold model output
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        time=_fmt_time, num=_fmt_num, pct=_fmt_pct, dur=_fmt_dur,
        pretty=lambda v: json.dumps(v, indent=2, ensure_ascii=False, sort_keys=True, default=str),
    )
    env.globals.update(
        episode_url=lambda eid: "/episodes/" + quote(str(eid), safe="/"),
        run_url=lambda rid: "/runs/" + quote(str(rid), safe="/"),
        qs=lambda args: ("?" + urlencode(args)) if args else "",
    )
    return Jinja2Templates(env=env)


_SECURITY_HEADERS = [
    (b"content-security-policy", _CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class _SecurityHeaders:
    """Adds the CSP and its companions to every response, refusals and unhandled-error 500s included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in _SECURITY_HEADERS:
                    headers[key.decode()] = value.decode()
            await send(message)

        await self.app(scope, receive, secured)


class _Viewer(FastAPI):
    """The viewer's FastAPI app, with the security headers outside Starlette's error middleware.

    Starlette answers an unhandled exception from its outermost layer, past every user middleware; wrapping the
    whole stack puts the CSP on that 500 too.
    """

    def build_middleware_stack(self) -> ASGIApp:
        return _SecurityHeaders(super().build_middleware_stack())


class _TokenGate:
    """Lets a request through when it proves it holds the viewer's token; `/healthz` stays open.

    Proof is `Authorization: Bearer <token>` (scripts) or the viewer's cookie (browsers). A browser gets the cookie
    by opening any page once with `?token=<token>`: the answer is a redirect to the same page without it, setting
    an HttpOnly, SameSite=Strict cookie that holds a value derived from the token (not the token itself).
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode()
        self._bearer = b"Bearer " + self._token
        self._cookie = hmac.new(self._token, b"mcpgym viewer cookie", hashlib.sha256).hexdigest().encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/healthz":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        query = QueryParams(scope.get("query_string", b""))
        cookie_name = f"mcpgym_viewer_{(scope.get('server') or ('', 0))[1]}"  # cookies do not tell ports apart
        if "token" in query:
            if not hmac.compare_digest(query["token"].encode(), self._token):
                await self._refuse(scope, receive, send, "invalid token in ?token=")
                return
            rest = urlencode([(k, v) for k, v in query.multi_items() if k != "token"])
            location = quote(scope["path"]) + (f"?{rest}" if rest else "")
            cookie = f"{cookie_name}={self._cookie.decode()}; HttpOnly; SameSite=Strict; Path=/"
            await RedirectResponse(location, status_code=303, headers={"set-cookie": cookie})(scope, receive, send)
            return
        authorization = headers.get("authorization")
        if authorization is not None:
            if hmac.compare_digest(authorization.encode("latin-1"), self._bearer):
                await self.app(scope, receive, send)
                return
            await self._refuse(scope, receive, send, "invalid bearer token")
            return
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(headers.get("cookie", ""))
        except Exception:  # noqa: BLE001 - a malformed Cookie header is just no cookie
            jar = SimpleCookie()
        given = jar.get(cookie_name)
        if given is not None and hmac.compare_digest(given.value.encode("latin-1"), self._cookie):
            await self.app(scope, receive, send)
            return
        await self._refuse(scope, receive, send, "this viewer needs its token")

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, reason: str) -> None:
        message = (f"{reason}: send 'Authorization: Bearer <token>', or open any page once with ?token=<token> "
                   "in the browser (it sets a cookie)")
        headers = {"www-authenticate": 'Bearer realm="mcpgym viewer"'}
        response: Response
        if scope["path"].startswith("/api/"):
            response = JSONResponse({"error": message}, status_code=401, headers=headers)
        else:
            response = Response(message + "\n", status_code=401, media_type="text/plain", headers=headers)
        await response(scope, receive, send)


def _open_store(request: Request) -> Iterator[Store]:
    """The request's read-only connection to the app's database (closed when the response is sent)."""
    store = Store(request.app.state.db, readonly=True)
    try:
        yield store
    finally:
        store.close()


StoreDep = Annotated[Store, Depends(_open_store)]


def create_app(
    db: str | Path,
    *,
    per_page: int = 50,
    token: str | None = None,
    host: str = "127.0.0.1",
    allowed_hosts: Sequence[str] = (),
) -> FastAPI:
    """Build the viewer over one trajectory database, opened read-only on each request.

    Every request must carry an accepted `Host` (a loopback name, `host` itself or one of `allowed_hosts`; 421
    otherwise) and no foreign `Origin` (403), the gateway's own check against DNS rebinding. With a token, every
    path but `/healthz` also needs it (401 otherwise).

    Args:
        db: the SQLite file written by `mcpgym collect`.
        per_page: episodes per page in the episode list (1-500; `?per_page=` overrides it).
        token: the token every request must prove (a bearer header, or the cookie `?token=` sets); None: no token.
        host: the address the server is bound to (accepted as a `Host` value unless it is a wildcard).
        allowed_hosts: more accepted `Host` values, e.g. "viewer.lan:8000" or "viewer.lan:*".

    Returns:
        The FastAPI app (pages under /, JSON under /api/).

    Raises:
        StoreError: the file does not exist or is not a trajectory database.
    """
    db = Path(db)
    Store(db, readonly=True).close()  # fail now, with a clear message, rather than on the first request
    if not 1 <= per_page <= q.MAX_PAGE_SIZE:
        raise ConfigError(f"per_page must be from 1 to {q.MAX_PAGE_SIZE}, got {per_page}")
    if token is not None and not token:
        raise ConfigError("token must not be empty (pass None for no token)")
    templates = _templates()
    middleware = [Middleware(HostOriginMiddleware, policy=HostPolicy.for_bind(host, allowed_hosts))]
    if token:
        middleware.append(Middleware(_TokenGate, token=token))
    app = _Viewer(title="mcpgym viewer", docs_url="/api/docs", redoc_url=None, openapi_url="/api/openapi.json",
                  middleware=middleware)
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")

    app.state.db = db

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("db_name", db.name)
        return templates.TemplateResponse(request, name, context, status_code=status)

    def error(request: Request, status: int, message: str) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status_code=status)
        return page(request, "error.html", status=status, status_code=status, message=message, nav="")

    @app.exception_handler(ConfigError)
    async def bad_input(request: Request, exc: ConfigError) -> Response:
        return error(request, 400, str(exc))

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        return error(request, 404, str(exc))

    @app.exception_handler(StoreError)
    async def store_broken(request: Request, exc: StoreError) -> Response:
        return error(request, 503, str(exc))

    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        return RedirectResponse("/runs")

    @app.get("/healthz")
    def healthz(store: StoreDep) -> dict[str, Any]:
        """Liveness: the database opens and answers."""
        return {"ok": True, "runs": store.db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]}

    # ------------------------------------------------------------------ runs
    @app.get("/api/runs")
    def api_runs(store: StoreDep) -> dict[str, Any]:
        """Every run with its summary."""
        return {"runs": q.run_summaries(store)}

    @app.get("/runs", response_class=HTMLResponse, include_in_schema=False)
    def runs_page(request: Request, store: StoreDep) -> HTMLResponse:
        return page(request, "runs.html", nav="runs", runs=q.run_summaries(store))

    def _run(store: Store, run_id: str) -> dict[str, Any]:
        if not store.has_run(run_id):
            known = ", ".join(store.run_ids()[-10:]) or "none"
            raise NotFound(f"no run named {run_id!r} in {db.name}; recent runs: {known}")
        summary = q.run_summary(store, run_id)
        summary["by_family"] = q.success_by_family(store, [run_id])
        return summary

    @app.get("/api/runs/{run_id:path}")
    def api_run(run_id: str, store: StoreDep) -> dict[str, Any]:
        """One run: summary, config, success by family."""
        return _run(store, run_id)

    @app.get("/runs/{run_id:path}", response_class=HTMLResponse, include_in_schema=False)
    def run_page(request: Request, run_id: str, store: StoreDep) -> HTMLResponse:
        run = _run(store, run_id)
        chart = ch.bar_chart(
            [ch.Bar(f["family"], f["rate"], f"{f['family']}: {f['passed']}/{f['episodes']}") for f in run["by_family"]],
            title="Success rate by family", y_max=1.0, fmt=lambda v: f"{v:.0%}",
        )
        return page(request, "run.html", nav="runs", run=run, chart=chart)

    # ------------------------------------------------------------------ episodes
    def _episodes(request: Request, store: Store) -> dict[str, Any]:
        flt = q.EpisodeFilter.from_params(request.query_params, per_page=per_page)
        result = q.list_episodes(store, flt)
        return {"filter": flt, "total": result.total, "pages": result.pages, "episodes": result.rows}

    @app.get("/api/episodes")
    def api_episodes(request: Request, store: StoreDep) -> dict[str, Any]:
        """Episodes filtered by run, family, passed, status, reward_min/reward_max, error_type and q (text);
        paginated with page and per_page."""
        data = _episodes(request, store)
        return {**data, "filter": data["filter"].__dict__}

    @app.get("/episodes", response_class=HTMLResponse, include_in_schema=False)
    def episodes_page(request: Request, store: StoreDep) -> HTMLResponse:
        data = _episodes(request, store)
        return page(request, "episodes.html", nav="episodes", choices=q.filter_choices(store),
                    passed_choices=q.PASSED_CHOICES, status_choices=q.STATUS_CHOICES, **data)

    def _episode(store: Store, episode_id: str) -> dict[str, Any]:
        if store.db.execute("SELECT 1 FROM episodes WHERE id = ?", [episode_id]).fetchone() is None:
            raise NotFound(f"no episode {episode_id!r} in {db.name}; episode ids look like <run>/<task>/<sample>")
        return episode_view(store, episode_id)

    @app.get("/api/episodes/{episode_id:path}")
    def api_episode(episode_id: str, store: StoreDep) -> dict[str, Any]:
        """One episode: its row, messages (OpenAI format), tool calls and the readable turns."""
        return _episode(store, episode_id)

    @app.get("/episodes/{episode_id:path}", response_class=HTMLResponse, include_in_schema=False)
    def episode_page(request: Request, episode_id: str, store: StoreDep) -> HTMLResponse:
        return page(request, "episode.html", nav="episodes", view=_episode(store, episode_id))

    # ------------------------------------------------------------------ charts
    def _chart_data(request: Request, store: Store) -> dict[str, Any]:
        run_ids = [r for r in request.query_params.getlist("run") if r]
        unknown = [r for r in run_ids if not store.has_run(r)]
        if unknown:
            raise ConfigError(f"unknown run(s) {', '.join(map(repr, unknown))}; see /runs for the runs in {db.name}")
        return {
            "runs": run_ids,
            "reward_histogram": q.reward_histogram(store, run_ids),
            "success_by_family": q.success_by_family(store, run_ids),
            "turns": q.value_distribution(store, "turns", run_ids),
            "tool_calls": q.value_distribution(store, "tool_calls", run_ids),
            "eval": q.eval_comparison(store, run_ids or None),
        }

    @app.get("/api/charts")
    def api_charts(request: Request, store: StoreDep) -> dict[str, Any]:
        """The data behind the charts (repeat ?run= to restrict to some runs)."""
        return _chart_data(request, store)

    @app.get("/charts", response_class=HTMLResponse, include_in_schema=False)
    def charts_page(request: Request, store: StoreDep) -> HTMLResponse:
        data = _chart_data(request, store)
        ev = data["eval"]
        svgs = {
            "reward": ch.bar_chart(
                [ch.Bar(f"{b['low']:.2g}", b["count"], f"[{b['low']:.3g}, {b['high']:.3g}): {b['count']}")
                 for b in data["reward_histogram"]],
                title="Reward histogram (done episodes)",
            ),
            "family": ch.bar_chart(
                [ch.Bar(f["family"], f["rate"], f"{f['family']}: {f['passed']}/{f['episodes']} passed")
                 for f in data["success_by_family"]],
                title="Success rate by family", y_max=1.0, fmt=lambda v: f"{v:.0%}", color=ch.PALETTE[2],
            ),
            "turns": ch.bar_chart([ch.Bar(d["value"], d["count"]) for d in data["turns"]],
                                  title="Turns per episode", color=ch.PALETTE[1]),
            "tool_calls": ch.bar_chart([ch.Bar(d["value"], d["count"]) for d in data["tool_calls"]],
                                       title="Tool calls per episode", color=ch.PALETTE[4]),
            "eval": ch.grouped_bar_chart(
                ev["families"],
                [(" ".join(filter(None, [r["label"], r["model"] or r["id"]])),
                  [ev["rates"][r["id"]].get(f) for f in ev["families"]]) for r in ev["runs"]],
                title="Evaluation runs: success rate by family",
            ),
        }
        return page(request, "charts.html", nav="charts", data=data, svgs=svgs,
                    all_runs=q.filter_choices(store)["runs"])

    return app


def serve(
    db: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    token: str | None = None,
    allowed_hosts: Sequence[str] = (),
) -> None:
    """Serve the viewer until interrupted.

    Args:
        db: the trajectory database (opened read-only).
        host: the interface to bind; the default keeps it on this machine. Any other needs a token.
        port: the TCP port.
        token: the token clients must prove (see `create_app`); required when `host` is not loopback.
        allowed_hosts: more accepted `Host` values (the names clients use to reach a non-loopback bind).

    Raises:
        ConfigError: `host` is not loopback and no token is given.
        StoreError: the database is missing or unreadable.
    """
    import uvicorn

    if not is_loopback(host) and not token:
        raise ConfigError(
            f"--host {host} accepts connections from other machines, so the viewer needs a token: pass --token or "
            f"set {TOKEN_ENV} (or bind to 127.0.0.1)"
        )
    app = create_app(db, token=token, host=host, allowed_hosts=allowed_hosts)
    uvicorn.run(app, host=host, port=port, log_level="warning")
