"""The pytest side of `tools.netns`: a fixture that yields a `VethPair` or skips with the reason."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import pytest

from tools.netns import SKIP_REASON, NamespaceLoop, NetnsUnavailable, Side, VethPair, netns_unavailable_reason

__all__ = ["NamespaceLoop", "Side", "VethPair", "netns_unavailable_reason", "veth_pair_fixture"]


def veth_pair_fixture(scope: Literal["function", "module", "session"] = "function", **options: Any) -> Any:
    """A pytest fixture yielding an open `VethPair`; it skips when namespaces are unavailable.

    The fixture's name is the module attribute it is assigned to: `veth_pair = veth_pair_fixture("module")`.
    """

    @pytest.fixture(scope=scope)
    def fixture() -> Iterator[VethPair]:
        pair = VethPair(**options)
        try:
            pair.open()
        except NetnsUnavailable as exc:
            pytest.skip(f"{SKIP_REASON} ({exc})")
        try:
            yield pair
        finally:
            pair.close()

    return fixture
