"""What every ``pycompose container`` command shares: finding the engine, turning engine
errors into docker's one-line messages, and acting on several containers in turn.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from pycompose.cli import framework as fw
from pycompose.cli.engine_cmd import config_options
from pycompose.engine.errors import EngineError
from pycompose.errors import PycomposeError

if TYPE_CHECKING:
    from pycompose.engine.client import EngineClient
    from pycompose.engine.config import EngineConfig

F = TypeVar("F", bound=Callable[..., Any])


class CliError(PycomposeError):
    """A one-line error for the user, with the exit code the command ends with."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def daemon_message(err: EngineError) -> str:
    """Docker's wording for an error answer: ``Error response from daemon: ...``."""
    from pycompose.engine.client import EngineUnreachable

    if isinstance(err, EngineUnreachable):
        return str(err)
    return f"Error response from daemon: {err}"


@contextlib.contextmanager
def daemon_errors(exit_code: int = 1) -> Iterator[None]:
    """Translate engine and connection errors into a :class:`CliError`."""
    try:
        yield
    except CliError:
        raise
    except EngineError as err:
        raise CliError(daemon_message(err), exit_code) from err
    except BrokenPipeError:
        # the reader went away (``| head``): end quietly with SIGPIPE's status, as docker
        # does, and keep Python from complaining while it flushes stdout at exit
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        raise fw.Exit(141) from None
    except OSError as err:
        raise CliError(f"error during connect: {err}", exit_code) from err


def connect(config: EngineConfig, exit_code: int = 1) -> EngineClient:
    """A client for the configured engine (our own is started if nothing answers)."""
    from pycompose.engine.client import EngineClient

    client = EngineClient(str(config.socket_path))
    if client.ping():  # the usual case, without importing the daemon's side
        return client
    from pycompose.engine.daemon import ensure_daemon

    try:
        return ensure_daemon(config)
    except (EngineError, OSError) as err:
        raise CliError(str(err), exit_code) from err


def engine_command(exit_code: int = 1) -> Callable[[F], F]:
    """Give a command the engine flags (``-H`` and friends) and a ready ``client`` argument;
    engine errors end it with one line and ``exit_code``."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, config: EngineConfig, **kwargs: Any) -> Any:
            client = connect(config, exit_code)
            with daemon_errors(exit_code):
                return func(*args, client=client, **kwargs)

        return config_options(wrapper)  # type: ignore[return-value]

    return decorate


def for_each(names: Iterable[str], action: Callable[[str], None], echo: bool = True) -> None:
    """Run ``action`` per container as docker does: report each failure on stderr, go on,
    and exit 1 at the end if any failed; each success prints the name given."""
    failed = False
    for name in names:
        try:
            with daemon_errors():
                action(name)
        except CliError as err:
            fw.echo(str(err), err=True)
            failed = True
            continue
        if echo:
            fw.echo(name)
    if failed:
        raise fw.Exit(1)


def parse_filters(values: Iterable[str]) -> dict[str, list[str]]:
    """``--filter key=value`` flags as the API's filters map."""
    out: dict[str, list[str]] = {}
    for item in values:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise fw.UsageError(f"bad format of filter (expected name=value): {item}")
        out.setdefault(key.strip().lower(), []).append(value)
    return out


def write_out(data: bytes) -> None:
    """Raw bytes to stdout (flushed: output is interleaved with the engine's streams)."""
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def save_chunks(chunks: Iterable[bytes], output: str | None) -> None:
    """A streamed archive to stdout, or to ``output`` through a temp file renamed into
    place at the end (an interrupted save leaves no half-written file)."""
    if output is None:
        for chunk in chunks:
            write_out(chunk)
        return
    import os

    tmp = f"{output}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as fp:
            for chunk in chunks:
                fp.write(chunk)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
