"""A test case: its id, title, the rule ids it checks, its preconditions, how it plays, and how to break our own
peer so that the case must fail (the proof, in our suite, that the case can fail)."""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from stack.session.services import ControlMode, ServiceId

from .bench import Bench
from .driver import Script
from .profile import DeviceProfile
from .verdict import Verdict


@dataclass(frozen=True)
class Needs:
    """What the device must support for the case to judge it (else the case is inconclusive)."""

    service: ServiceId | None = None
    control_mode: ControlMode | None = None
    features: tuple[str, ...] = ()  # DeviceProfile flags: "pause", "standby", "tls", "tcp", ...

    def unmet(self, profile: DeviceProfile) -> str | None:
        """Why the profile does not meet the needs, or None."""
        if self.service is not None and self.service not in profile.services:
            return f"the device does not offer {self.service.name}"
        if self.control_mode is not None and self.control_mode not in profile.control_modes:
            return f"the device does not support {self.control_mode.name.lower()} control"
        for feature in self.features:
            if not profile.supports(feature):
                return f"the device does not support {feature.replace('_', ' ')}"
        return None


@dataclass(frozen=True)
class Breaker:
    """How our own peer of the device's role is broken so that the case fails: a script for our driver playing
    that peer, and the rule the failing verdict must name."""

    script: Callable[[], Script]
    rule: str
    # our broken peer also needs these settings of its machine (e.g. a SECC that offers no pause)
    settings: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    id: str
    title: str
    role: str  # the device under test: "secc" or "evcc"
    rules: tuple[str, ...]
    play: Callable[[Bench], Awaitable[Verdict]]
    breaker: Breaker
    needs: Needs = Needs()
    tags: tuple[str, ...] = ()

    def selected_by(self, patterns: Iterable[str]) -> bool:
        """Whether an id glob (`SECC-SEQ-*`) or a tag (`tag:timing`) of `patterns` selects this case."""
        for pattern in patterns:
            if pattern.startswith("tag:"):
                if pattern[4:] in self.tags:
                    return True
            elif fnmatch.fnmatchcase(self.id, pattern) or fnmatch.fnmatchcase(self.id.lower(), pattern.lower()):
                return True
        return False
