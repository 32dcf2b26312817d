"""The pytest side of `tools.netns`: the namespace prerequisites (root, then iproute2) and a `VethPair` fixture."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any, Literal

import pytest

from tests.prerequisites import require, requires
from tools.netns import NamespaceLoop, NetnsUnavailable, Side, VethPair

__all__ = ["NamespaceLoop", "Side", "VethPair", "netns_marks", "require_netns", "veth_pair_fixture"]


def _root_missing() -> str | None:
    return None if os.geteuid() == 0 else "not root (network namespaces need CAP_SYS_ADMIN)"


def _ip_missing() -> str | None:
    return None if shutil.which("ip") else "iproute2's `ip` is not on PATH"


def require_netns() -> None:
    """Go on only where network namespaces can be made (tests/prerequisites.py: `root`, then `netns`)."""
    require("root", _root_missing())
    require("netns", _ip_missing())


def netns_marks() -> list[pytest.MarkDecorator]:
    """`require_netns` as marks, for a module's `pytestmark`."""
    return [requires("root", _root_missing()), requires("netns", _ip_missing())]


def veth_pair_fixture(scope: Literal["function", "module", "session"] = "function", **options: Any) -> Any:
    """A pytest fixture yielding an open `VethPair` (`require_netns` first; `ip netns add` has the last word).

    The fixture's name is the module attribute it is assigned to: `veth_pair = veth_pair_fixture("module")`.
    """

    @pytest.fixture(scope=scope)
    def fixture() -> Iterator[VethPair]:
        require_netns()
        pair = VethPair(**options)
        try:
            pair.open()
        except NetnsUnavailable as exc:
            require("netns", str(exc))
        try:
            yield pair
        finally:
            pair.close()

    return fixture
