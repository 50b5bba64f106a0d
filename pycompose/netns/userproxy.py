"""A userland proxy for published ports the kernel cannot forward: those bound to ``::1``.

Published ports are nftables DNAT (see :mod:`pycompose.netns.nat`), but Linux never routes
IPv6 loopback traffic out of the host (there is no IPv6 ``route_localnet``), so a port
published on ``[::1]`` is served the way Docker's userland proxy does it: the daemon listens
on the port's reservation socket and copies bytes to the container's address.

:class:`UserProxy` is what the port table uses (blocking, from the manager's worker threads):
``stop = proxy.start("tcp", reserved_sock, "10.0.0.2", 80)`` ... ``stop()``. It runs every
proxy on one asyncio loop in a thread of its own, started with the first proxy and ended
with the last, so nothing of it outlives the published ports. The proxies themselves
(:func:`open_proxy`) are plain asyncio and tested on loopback sockets.

The proxy serves the port table's reservation socket itself (listening on it), and closes
it when stopped: a duplicate would keep the port listening, its backlog filling with
connections nobody accepts, between stopping the proxy and closing the reservation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

from pycompose.netns.errors import NetworkError

log = logging.getLogger(__name__)

PROXIED_ADDRESSES = frozenset({"::1"})
CONNECT_TIMEOUT = 10.0
UDP_IDLE_SECONDS = 90.0  # as Docker's proxy: a UDP "connection" ends after 90 s of silence
UDP_MAX_FLOWS = 1024  # bounds the daemon's descriptors; the oldest flow gives way
_CHUNK = 65536
_START_TIMEOUT = 10.0

Stop = Callable[[], None]


def needs_proxy(host_ip: str) -> bool:
    """True where DNAT cannot work and a published port needs the userland proxy."""
    return host_ip in PROXIED_ADDRESSES


def reserve_proxied(protocol: str, host_ip: str, port: int) -> socket.socket:
    """Reserve a port the proxy will serve: bound and, for TCP, listening at once.

    Unlike a DNAT reservation (:func:`pycompose.netns.ports.reserve_port`) a TCP one sets
    SO_REUSEADDR: the proxy's own closed connections linger in TIME_WAIT on the port, and
    without it the port could not be published again for a minute. That is safe because
    the socket listens from the start, and Linux lets no other socket bind a listening
    port, SO_REUSEADDR or not. Raises ``OSError`` (EADDRINUSE) if something holds it.
    """
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(_family(host_ip), kind)
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host_ip, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _family(ip: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


class Proxy(Protocol):
    """One running proxy on the current loop."""

    async def aclose(self) -> None:
        """Stop listening, end every connection or flow, close every socket."""


# -- TCP --------------------------------------------------------------------------------------


class TcpProxy:
    """Accepts on the listening socket and pipes each connection to ``target``."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, sock: socket.socket) -> None:
        """Serve ``sock`` (bound; this listens on it and owns it from now on)."""
        sock.setblocking(False)
        self._server = await asyncio.start_server(self._on_client, sock=sock)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self._relay(reader, writer)
        finally:
            self._writers.discard(writer)
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(*self.target), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError) as err:
            # What a client of a DNAT port sees too: the connection ends at once.
            log.debug("userproxy: cannot reach %s:%d: %s", *self.target, err)
            return
        self._writers.add(up_writer)
        try:
            await asyncio.gather(
                _pipe(reader, up_writer, writer), _pipe(up_reader, writer, up_writer)
            )
        finally:
            self._writers.discard(up_writer)
            up_writer.close()

    async def aclose(self) -> None:
        """Stop listening, abort open connections and wait for their handlers."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for writer in list(self._writers):
            writer.transport.abort()
        # Aborted, the handlers end on their own; cancelling them would make asyncio's
        # stream server log the CancelledError. Cancel only one that hangs regardless.
        tasks = list(self._tasks)
        if tasks:
            _, hung = await asyncio.wait(tasks, timeout=5)
            for task in hung:
                task.cancel()
            await asyncio.gather(*hung, return_exceptions=True)


async def _pipe(
    src: asyncio.StreamReader, dst: asyncio.StreamWriter, src_writer: asyncio.StreamWriter
) -> None:
    """Copy until EOF, then half-close ``dst``; on an error abort both sides."""
    try:
        while data := await src.read(_CHUNK):
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof() and not dst.transport.is_closing():
            dst.write_eof()
    except OSError:
        # A reset on one side resets the other, so the peer's read ends too.
        dst.transport.abort()
        src_writer.transport.abort()


# -- UDP --------------------------------------------------------------------------------------


@dataclass
class _Flow:
    """One client's datagrams: a connected socket to the target, replies go to ``client``."""

    client: tuple[str | int, ...]
    sock: socket.socket
    last: float


class UdpProxy(asyncio.DatagramProtocol):
    """Relays datagrams per client address through a connected socket to ``target``."""

    def __init__(
        self,
        target: tuple[str, int],
        idle: float = UDP_IDLE_SECONDS,
        max_flows: int = UDP_MAX_FLOWS,
    ) -> None:
        self.target = target
        self.idle = idle
        self.max_flows = max_flows
        self.flows: dict[tuple[str | int, ...], _Flow] = {}
        self._transport: asyncio.DatagramTransport | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, sock: socket.socket) -> None:
        """Serve ``sock`` (bound; owned by this proxy from now on)."""
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, sock=sock)
        self._sweeper = asyncio.create_task(self._sweep())

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        flow = self.flows.get(addr)
        try:
            if flow is None:
                flow = self._open(addr)
            flow.last = time.monotonic()
            flow.sock.send(data)
        except OSError as err:  # UDP may lose a datagram; the client retries as with DNAT
            log.debug("userproxy: datagram to %s:%d dropped: %s", *self.target, err)

    def error_received(self, exc: Exception) -> None:
        log.debug("userproxy: %s", exc)

    def _open(self, client: tuple[str | int, ...]) -> _Flow:
        if len(self.flows) >= self.max_flows:
            oldest = min(self.flows.values(), key=lambda f: f.last)
            self._drop(oldest)
        sock = socket.socket(_family(self.target[0]), socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.connect(self.target)
        except OSError:
            sock.close()
            raise
        flow = _Flow(client, sock, time.monotonic())
        self.flows[client] = flow
        asyncio.get_running_loop().add_reader(sock.fileno(), self._reply, flow)
        return flow

    def _reply(self, flow: _Flow) -> None:
        while True:
            try:
                data = flow.sock.recv(_CHUNK)
            except BlockingIOError:
                return
            except OSError as err:  # e.g. ECONNREFUSED: nothing listens in the container yet
                log.debug("userproxy: from %s:%d: %s", *self.target, err)
                return
            flow.last = time.monotonic()
            if self._transport is not None and not self._transport.is_closing():
                self._transport.sendto(data, flow.client)

    def _drop(self, flow: _Flow) -> None:
        self.flows.pop(flow.client, None)
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(flow.sock.fileno())
        flow.sock.close()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(min(self.idle, 5.0))
            limit = time.monotonic() - self.idle
            for flow in [f for f in self.flows.values() if f.last < limit]:
                self._drop(flow)

    async def aclose(self) -> None:
        """Close the listening socket and every flow."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        for flow in list(self.flows.values()):
            self._drop(flow)
        if self._transport is not None:
            self._transport.close()
            await asyncio.sleep(0)  # the transport closes its socket on the next iteration


async def open_proxy(protocol: str, sock: socket.socket, target: tuple[str, int]) -> Proxy:
    """Serve the bound ``sock`` (which the proxy then owns) and relay to ``target``."""
    proxy: TcpProxy | UdpProxy
    if protocol == "tcp":
        proxy = TcpProxy(target)
    elif protocol == "udp":
        proxy = UdpProxy(target)
    else:
        raise ValueError(f"unsupported protocol {protocol!r}")
    await proxy.start(sock)
    return proxy


# -- the daemon's proxy thread ----------------------------------------------------------------


class UserProxy:
    """Runs the proxies on a loop in its own thread; thread-safe, blocking calls.

    The thread exists only while at least one proxy runs.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._active = 0

    @property
    def active(self) -> int:
        """How many proxies run."""
        return self._active

    def start(self, protocol: str, reserved: socket.socket, ip: str, port: int) -> Stop:
        """Proxy the bound ``reserved`` socket's port to ``ip:port``; returns how to stop it.

        The proxy owns ``reserved`` from now on: stopping it closes the socket (closing it
        again is harmless). On failure the socket is left as it was, for the caller to close.
        """
        with self._lock:
            loop = self._ensure_loop()
            opening = open_proxy(protocol, reserved, (ip, port))
            future = asyncio.run_coroutine_threadsafe(opening, loop)
            try:
                proxy = future.result(_START_TIMEOUT)
            except (OSError, TimeoutError, ValueError) as err:
                future.cancel()
                self._stop_loop_if_idle()
                raise NetworkError(
                    f"cannot start the userland proxy for {protocol} port "
                    f"{reserved.getsockname()[1]} to {ip}:{port}: {err}"
                ) from err
            self._active += 1
        stopped = threading.Event()

        def stop() -> None:
            if stopped.is_set():
                return
            stopped.set()
            with self._lock:
                assert self._loop is not None
                asyncio.run_coroutine_threadsafe(proxy.aclose(), self._loop).result()
                self._active -= 1
                self._stop_loop_if_idle()

        return stop

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="pycompose-userproxy", daemon=True
            )
            thread.start()
            self._loop, self._thread = loop, thread
        return self._loop

    def _stop_loop_if_idle(self) -> None:
        if self._active or self._loop is None or self._thread is None:
            return
        loop, thread = self._loop, self._thread
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
        self._loop = self._thread = None
