"""Sandbox backends behind one interface: `Sandbox.run(workspace, code=... | argv=..., stdin, limits) -> ExecResult`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcp_servers.exec.sandbox.base import SANDBOX_WORKDIR, ExecResult, Limits, Sandbox
from mcp_servers.exec.sandbox.process import DEFAULT_PRELOAD, ProcessSandbox, ProcessSandboxConfig

if TYPE_CHECKING:
    from mcp_servers.settings import ExecSettings

__all__ = [
    "SANDBOX_WORKDIR",
    "ExecResult",
    "Limits",
    "ProcessSandbox",
    "ProcessSandboxConfig",
    "Sandbox",
    "limits_from_settings",
    "make_sandbox",
]


def limits_from_settings(settings: ExecSettings, timeout_s: float | None = None) -> Limits:
    """The default execution limits of the exec settings (`MCPGYM_EXEC__*`).

    Args:
        settings: The exec settings.
        timeout_s: Override of the wall-clock limit.

    Returns:
        The limits.
    """
    return Limits(
        timeout_s=timeout_s if timeout_s is not None else settings.timeout_s,
        memory_mb=settings.memory_mb,
        processes=settings.max_processes,
        output_bytes=settings.max_output_bytes,
        file_bytes=settings.max_file_bytes,
        tmp_mb=settings.tmp_mb,
    )


def make_sandbox(settings: ExecSettings) -> Sandbox:
    """Build the backend named by `settings.backend` ("process" or "docker").

    Args:
        settings: The exec settings.

    Returns:
        An unstarted sandbox (it starts its helpers on first use).

    Raises:
        ConfigError: Unknown backend.
        ServerUnavailableError: The docker backend without the `docker` package.
    """
    from mcp_servers.errors import ConfigError, ServerUnavailableError

    if settings.backend == "process":
        return ProcessSandbox(
            ProcessSandboxConfig(
                limits=limits_from_settings(settings),
                python=settings.python,
                ro_paths=tuple(str(p) for p in settings.ro_paths),
                uid_base=settings.uid_base,
                pool_size=settings.pool_size,
                loopback=settings.loopback,
                preload=tuple(settings.preload) if settings.preload is not None else DEFAULT_PRELOAD,
            )
        )
    if settings.backend == "docker":
        try:
            from mcp_servers.exec.sandbox.docker_backend import DockerSandbox, DockerSandboxConfig
        except ImportError as exc:
            raise ServerUnavailableError(
                f"the docker backend needs the 'docker' package ({exc}); install it with: pip install 'mcpgym[docker]'"
            ) from None
        return DockerSandbox(
            DockerSandboxConfig(
                image=settings.docker_image,
                limits=limits_from_settings(settings),
                cpus=settings.docker_cpus,
                user=settings.docker_user,
            )
        )
    raise ConfigError(f"exec backend {settings.backend!r}: accepted values are 'process' and 'docker'")
