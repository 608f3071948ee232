"""The service's listening sockets, bound before anything else starts.

`router-ml serve` binds its --host and --port first, before the audit log is opened or the
router loaded, so that a port in use (or a host that is not this machine's) is a named error
with nothing created, not uvicorn's exit 3 after a "serving ..." line. The sockets are bound
but not listening until uvicorn serves them: until then a connection is refused, as before.

They are the sockets uvicorn would bind itself: one process binds what asyncio's
`create_server(host, port)` binds (every address --host resolves to; an IPv6 socket is
IPv6 only); `--workers N` binds the one socket uvicorn's supervisor shares with its workers
(IPv6 when --host has a colon, dual-stack as the system makes it).
"""

from __future__ import annotations

import errno
import socket

from router_ml.errors import ListenError, PortInUseError


def bind_sockets(host: str, port: int, *, workers: int = 1) -> list[socket.socket]:
    """The sockets to serve `host`:`port` on, bound; a ListenError (PortInUseError when another
    process has the port) naming the address and what to do."""
    if workers > 1:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return [_bind(host, port, family, (host, port), dual_stack=True)]
    try:
        infos = socket.getaddrinfo(host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ListenError(f"--host {host}: not an address this machine can listen on ({exc.strerror})") from exc
    sockets: list[socket.socket] = []
    unavailable: ListenError | None = None
    try:
        for family, _, _, _, address in dict.fromkeys(infos):
            try:
                sockets.append(_bind(host, port, family, address, dual_stack=False))
            except ListenError as exc:
                if isinstance(exc.__cause__, OSError) and exc.__cause__.errno == errno.EADDRNOTAVAIL:
                    unavailable = exc  # as asyncio does: this address (family) is not enabled here
                    continue
                raise
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    if not sockets:
        raise unavailable or ListenError(f"--host {host}: no address to listen on")
    return sockets


def _bind(host: str, port: int, family: int, address, *, dual_stack: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and not dual_stack:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise _named(exc, host, port) from exc
    sock.set_inheritable(True)  # --workers: the supervisor's children serve it
    return sock


def _named(exc: OSError, host: str, port: int) -> ListenError:
    where = _where(host, port)
    if exc.errno == errno.EADDRINUSE:
        return PortInUseError(f"{where} is in use: another process is listening there; stop it, or choose another "
                              "--port (or --host)")
    if exc.errno == errno.EACCES:
        return ListenError(f"cannot listen on {where}: permission denied (ports below 1024 need privileges); choose "
                           "another --port")
    if exc.errno == errno.EADDRNOTAVAIL:
        return ListenError(f"cannot listen on {where}: {host} is not an address of this machine; check --host")
    if isinstance(exc, socket.gaierror):
        return ListenError(f"--host {host}: not an address this machine can listen on ({exc.strerror})")
    return ListenError(f"cannot listen on {where}: {exc.strerror or exc}")


def _where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def url(host: str, sockets: list[socket.socket]) -> str:
    """The service's base URL as a client writes it (the port bound, e.g. for --port 0)."""
    return f"http://{_where(host, sockets[0].getsockname()[1])}"
