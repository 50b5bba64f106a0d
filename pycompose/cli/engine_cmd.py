"""``pycompose engine serve|stop|status``: run and control the bundled engine daemon."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from pycompose.cli import framework as fw
from pycompose.engine.config import EngineConfig

F = TypeVar("F", bound=Callable[..., Any])


def config_options(func: F) -> F:
    """The flags every engine command takes to find (or place) its engine."""
    options = [
        fw.option("--root", help="State directory [env PYCOMPOSE_ROOT; /var/lib/pycompose]."),
        fw.option(
            "--runtime-dir",
            help="Socket, pid file and log directory [env PYCOMPOSE_RUNTIME_DIR; /run/pycompose].",
        ),
        fw.option(
            "-H",
            "--host",
            help="API socket as unix:///path [env PYCOMPOSE_HOST; <runtime>/engine.sock].",
        ),
        fw.option(
            "--bridge-prefix", help="Prefix of bridge names [env PYCOMPOSE_BRIDGE_PREFIX]."
        ),
        fw.option(
            "--subnet-pool",
            help="Network CIDRs, optional size: 10.89.0.0/16:24 [env PYCOMPOSE_SUBNET_POOL].",
        ),
    ]
    for option in reversed(options):
        func = option(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # Only ``serve`` has the registry options (see registry_options) and reads the
        # daemon config file; the other commands take registry settings from the environment.
        serving = "config_file" in kwargs
        kwargs["config"] = EngineConfig.load(
            root=kwargs.pop("root"),
            runtime_dir=kwargs.pop("runtime_dir"),
            host=kwargs.pop("host"),
            bridge_prefix=kwargs.pop("bridge_prefix"),
            subnet_pool=kwargs.pop("subnet_pool"),
            registry_mirrors=kwargs.pop("registry_mirrors", None),
            insecure_registries=kwargs.pop("insecure_registries", None),
            certs_dir=kwargs.pop("certs_dir", None),
            config_file=kwargs.pop("config_file", None),
            read_config_file=serving,
        )
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def registry_options(func: F) -> F:
    """``engine serve``'s registry flags and daemon config file, as dockerd's.

    Put it below ``config_options``, which turns them into the EngineConfig.
    """
    options = [
        fw.option(
            "--config-file",
            metavar="PATH",
            help="Daemon config file (JSON: registry-mirrors, insecure-registries, certs-dir) "
            "[<config dir>/daemon.json].",
        ),
        fw.option(
            "--registry-mirror",
            "registry_mirrors",
            multiple=True,
            metavar="URL",
            help="A Docker Hub mirror, tried first (repeatable) "
            "[env PYCOMPOSE_REGISTRY_MIRRORS, comma-separated].",
        ),
        fw.option(
            "--insecure-registry",
            "insecure_registries",
            multiple=True,
            metavar="HOST[:PORT]|CIDR",
            help="A registry allowed plain http or unverified TLS (repeatable; loopback "
            "always is) [env PYCOMPOSE_INSECURE_REGISTRIES, comma-separated].",
        ),
        fw.option(
            "--certs-dir",
            metavar="DIR",
            help="Per-registry TLS files: DIR/<host[:port]>/ holds *.crt CAs and a client "
            "*.cert/*.key pair; searched before /etc/docker/certs.d "
            "[env PYCOMPOSE_CERTS_DIR; /etc/pycompose/certs.d].",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@fw.group()
def engine() -> None:
    """Run and control the bundled container engine."""


@engine.command()
@config_options
@registry_options
@fw.option(
    "--log-level",
    choices=["debug", "info", "warning", "error"],
    default="info",
    show_default=True,
    help="Daemon log verbosity (logs go to stderr).",
)
@fw.option(
    "--component",
    "components",
    multiple=True,
    metavar="MODULE:FUNCTION",
    help="An extra engine component to load after the built-in ones (repeatable).",
)
def serve(config: EngineConfig, log_level: str, components: tuple[str, ...]) -> None:
    """Run the engine daemon in the foreground."""
    import logging
    import sys

    from pycompose.engine.daemon import serve as serve_daemon

    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    serve_daemon(config, components)


@engine.command()
@config_options
@fw.option(
    "-t", "--timeout", type=float, default=15.0, show_default=True,
    help="Seconds to wait after SIGTERM before SIGKILL.",
)  # fmt: skip
def stop(config: EngineConfig, timeout: float) -> None:
    """Stop the engine daemon."""
    from pycompose.engine.daemon import stop as stop_daemon

    pid = stop_daemon(config, timeout=timeout)
    if pid is None:
        fw.echo(f"no engine running for {config.runtime_dir}")
    else:
        fw.echo(f"engine stopped (pid {pid})")


@engine.command()
@config_options
def status(config: EngineConfig) -> None:
    """Show whether the engine daemon runs and answers; exit 1 if it does not answer."""
    from pycompose.engine.daemon import status as daemon_status

    st = daemon_status(config)
    state = "running" if st.running else "not running"
    pid = f" (pid {st.pid})" if st.pid is not None else ""
    answer = "answers" if st.answering else "does not answer"
    fw.echo(f"engine {state}{pid}; {config.host} {answer}")
    if not st.answering:
        raise fw.Exit(1)
