"""Two network namespaces joined by a veth pair with IPv6 link-local addresses, for tests over a real link.

`VethPair` creates namespaces `mcsv2g-<pid>-<random>-a`/`-b` with veth ends `va` (in a) and `vb` (in b),
brings `lo` and the veth ends up, disables DAD (or, with dad=True, waits for it) so the fe80:: addresses are
usable, and deletes both namespaces on exit, failure included. Namespaces left by a killed run (their pid
is gone) are swept at the next start.

How code runs inside a namespace (Python 3.11 has no os.setns):
- `pair.loop("a")`: a dedicated thread joins the namespace with setns(2) through ctypes and runs an asyncio
  loop; `.run(coro)` runs a coroutine there and returns its result or raises its exception. The kernel keeps
  the network namespace per thread and a socket stays in the namespace it was created in, so both ends of a
  test live in one process: fast, and failures are real exceptions. Threads it starts inherit the namespace.
  Catch: /proc/net is /proc/self/net, the main thread's namespace; read /proc/thread-self/net instead.
- `pair.popen("a", argv)`: `ip netns exec` for other programs (Josev, a second interpreter).
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import re
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine
from ipaddress import IPv6Address
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

T = TypeVar("T")
Side = Literal["a", "b"]
SIDES: tuple[Side, Side] = ("a", "b")

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")
PREFIX = "mcsv2g"
_STALE = re.compile(rf"^{PREFIX}-(\d+)-[0-9a-f]+-[ab]$")
_libc = ctypes.CDLL(None, use_errno=True)


class NetnsUnavailable(RuntimeError):
    """This machine cannot create network namespaces (not root, no iproute2, `ip netns add` refused)."""


class NetnsError(RuntimeError):
    """An `ip` command failed while setting up or inspecting the namespaces."""


def join_netns(name: str) -> None:
    """Move the calling thread (only it) into the named network namespace."""
    fd = os.open(NETNS_DIR / name, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns({name}): {os.strerror(errno)}")
    finally:
        os.close(fd)


def call_in_netns(name: str, function: Callable[..., T], *args: Any) -> T:
    """`function(*args)` on a short-lived thread inside the named namespace."""
    result: list[T] = []
    error: list[BaseException] = []

    def main() -> None:
        try:
            join_netns(name)
            result.append(function(*args))
        except BaseException as exc:  # re-raised in the caller's thread
            error.append(exc)

    thread = threading.Thread(target=main, name=f"netns-{name}")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


class NamespaceLoop:
    """An asyncio loop on a thread inside a network namespace; `run` hands it coroutines."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=f"netns-loop-{netns}", daemon=True)

    def __enter__(self) -> NamespaceLoop:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """The coroutine's result, run on this namespace's loop (its exception is raised here)."""
        if self._loop is None:
            raise RuntimeError("NamespaceLoop is not started")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def _main(self) -> None:
        try:
            join_netns(self.netns)
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._loop = loop
        self._ready.set()
        try:
            loop.run_forever()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


class VethPair:
    """Namespaces a and b joined by veth `va`<->`vb`; use as a context manager or `open`/`close`."""

    def __init__(self, *, dad: bool = False, timeout: float = 5.0) -> None:
        tag = f"{PREFIX}-{os.getpid()}-{secrets.token_hex(3)}"
        self.namespaces: dict[Side, str] = {"a": f"{tag}-a", "b": f"{tag}-b"}
        self.interfaces: dict[Side, str] = {"a": "va", "b": "vb"}  # ≤ 15 characters (IFNAMSIZ)
        self.dad = dad
        self.timeout = timeout
        self._created: list[str] = []

    def open(self) -> VethPair:
        if reason := netns_unavailable_reason():
            raise NetnsUnavailable(reason)
        sweep_stale()
        try:
            self._create()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Delete the namespaces (the veth pair goes with them); safe to call twice."""
        while self._created:
            name = self._created.pop()
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)

    def __enter__(self) -> VethPair:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def address(self, side: Side) -> IPv6Address:
        """The usable (non-tentative) link-local address of the veth end in namespace `side`."""
        address = self._link_local(side)
        if address is None:
            raise NetnsError(f"no usable link-local address on {self.interfaces[side]} in {self.namespaces[side]}")
        return address

    def loop(self, side: Side) -> NamespaceLoop:
        """A `NamespaceLoop` in namespace `side` (enter it with `with`)."""
        return NamespaceLoop(self.namespaces[side])

    def popen(self, side: Side, argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """`argv` started inside namespace `side` through `ip netns exec`."""
        return subprocess.Popen(["ip", "netns", "exec", self.namespaces[side], *argv], **kwargs)

    def _create(self) -> None:
        for name in self.namespaces.values():
            result = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise NetnsUnavailable(f"`ip netns add` failed: {result.stderr.strip()}")
            self._created.append(name)
            if not self.dad:
                # before the veth exists: a new device copies conf/default; DAD is skipped when all and dev are 0
                call_in_netns(name, _disable_dad)
            _ip("-n", name, "link", "set", "lo", "up")
        a, b = self.namespaces["a"], self.namespaces["b"]
        _ip("-n", a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b)
        for side in SIDES:
            _ip("-n", self.namespaces[side], "link", "set", self.interfaces[side], "up")
        deadline = time.monotonic() + self.timeout
        for side in SIDES:
            while self._link_local(side) is None:
                if time.monotonic() > deadline:
                    raise NetnsError(f"{self.interfaces[side]}: no usable link-local address after {self.timeout} s")
                time.sleep(0.02)

    def _link_local(self, side: Side) -> IPv6Address | None:
        out = _ip(
            "-n", self.namespaces[side], "-j", "-6", "addr", "show", "dev", self.interfaces[side], "scope", "link"
        )
        for link in json.loads(out or "[]"):
            for info in link.get("addr_info", []):
                if not info.get("tentative") and not info.get("dadfailed"):
                    return IPv6Address(info["local"])
        return None


def netns_unavailable_reason() -> str | None:
    """Why namespaces cannot be made here (None if they probably can; `ip netns add` has the last word)."""
    if os.geteuid() != 0:
        return "not root"
    if shutil.which("ip") is None:
        return "iproute2 `ip` not found"
    return None


def sweep_stale() -> None:
    """Delete namespaces this helper made in processes that no longer exist (a run killed with SIGKILL)."""
    if not NETNS_DIR.is_dir():
        return
    for path in NETNS_DIR.iterdir():
        match = _STALE.match(path.name)
        if match and not _alive(int(match.group(1))):
            subprocess.run(["ip", "netns", "del", path.name], capture_output=True, check=False)


def _disable_dad() -> None:
    for conf in ("all", "default"):
        Path(f"/proc/sys/net/ipv6/conf/{conf}/accept_dad").write_text("0")


def _ip(*args: str) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
