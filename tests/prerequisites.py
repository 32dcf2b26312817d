"""Prerequisites of the tests (Java, root, network namespaces, the shared vectors, ...): CI cannot pass by skipping.

A test that needs something the machine may lack says so with `require(name, missing)` in its body or a
fixture, or with the mark `requires(name, missing)`; `missing` is None when the prerequisite is there, else
the reason it is not. A missing prerequisite:

- FAILS the test in a strict run (`CI` set to a true value, as CI does, or `MCS_V2G_STRICT=1`), naming what
  is missing, unless the run declares it optional: `MCS_V2G_OPTIONAL=java,root` (a comma list of names from
  `PREREQUISITES`, or `all`);
- skips it otherwise (a developer's machine), and the end of the run says that CI would fail.

In a strict run any other skip fails too (a `pytest.skip`, a `skipif` mark, an empty parameter set): a skip is
either a declared optional prerequisite or a failure. The terminal summary lists the optional prerequisites
declared and what was skipped because of each.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import NoReturn, overload

import pytest

STRICT_ENV = "MCS_V2G_STRICT"
OPTIONAL_ENV = "MCS_V2G_OPTIONAL"

PREREQUISITES = {
    "java": "a Java runtime on PATH (Josev's EXI codec runs in a JVM)",
    "josev": "Josev's own venv under .peers/ (built with pip from PyPI on first use)",
    "root": "root (network namespaces, raw SDP over a veth pair)",
    "netns": "network namespaces: iproute2's `ip` and a kernel that lets us add namespaces",
    "vectors": "the shared EXI vectors (`shared/vectors` beside or above the clone, or MCS_V2G_VECTORS)",
    "ipv6": "an IPv6 loopback (::1)",
    "tls13-ciphersuites": "a Python/OpenSSL whose TLS 1.3 cipher suites can be set",
    "openssl": "the openssl command-line tool on PATH",
    "sigalrm": "SIGALRM and setitimer (the hang guard of the fuzz tests)",
    "mosquitto": "the mosquitto MQTT broker on PATH",
    "udp-multicast": (
        "python-can's udp_multicast bus: msgpack and an IPv4 multicast route with loopback"
        " (a frame sent to a 239.x.y.z group comes back)"
    ),
    "vcan": "SocketCAN vcan: root, iproute2's `ip` and a kernel with the vcan module (`ip link add ... type vcan`)",
}


@dataclass(frozen=True)
class Missing:
    """A missing prerequisite, attached as `prerequisite` to the skip or failure that `require` raises."""

    name: str
    reason: str


@dataclass(frozen=True)
class Policy:
    """What this run does with a missing prerequisite, read from the environment."""

    strict: bool
    optional: frozenset[str]

    @classmethod
    def from_env(cls, env: dict[str, str] | os._Environ[str] = os.environ) -> Policy:
        strict = _true(env.get("CI", "")) or _true(env.get(STRICT_ENV, ""))
        names = {n.strip() for n in env.get(OPTIONAL_ENV, "").split(",") if n.strip()}
        unknown = sorted(names - set(PREREQUISITES) - {"all"})
        if unknown:
            raise pytest.UsageError(
                f"{OPTIONAL_ENV}: unknown prerequisite(s) {', '.join(unknown)}; known: {', '.join(PREREQUISITES)}, all"
            )
        return cls(strict, frozenset(PREREQUISITES) if "all" in names else frozenset(names))

    def skips(self, name: str) -> bool:
        return not self.strict or name in self.optional


def _true(value: str) -> bool:
    return value.strip().lower() not in ("", "0", "false", "no", "off")


@overload
def require(name: str, missing: str) -> NoReturn: ...
@overload
def require(name: str, missing: str | None) -> None: ...
def require(name: str, missing: str | None) -> None:
    """Go on when `missing` is None; else skip or fail the running test as the run's policy says."""
    if name not in PREREQUISITES:
        raise ValueError(f"unknown prerequisite {name!r}: add it to tests/prerequisites.py PREREQUISITES")
    if missing is None:
        return
    outcome = _outcome(name, missing)
    outcome.prerequisite = Missing(name, missing)  # type: ignore[attr-defined]
    raise outcome


def _outcome(name: str, missing: str) -> BaseException:
    if Policy.from_env().skips(name):
        return pytest.skip.Exception(f"missing prerequisite {name!r}: {missing}")
    return pytest.fail.Exception(
        f"missing prerequisite {name!r}: {missing}. Install it, or declare it optional for this run: "
        f"{OPTIONAL_ENV}={name} (comma list, or `all`)",
        pytrace=False,
    )


def requires(name: str, missing: str | None) -> pytest.MarkDecorator:
    """The mark form of `require`, checked when each marked test is set up (for modules and parameters)."""
    if name not in PREREQUISITES:
        raise ValueError(f"unknown prerequisite {name!r}: add it to tests/prerequisites.py PREREQUISITES")
    return pytest.mark.prerequisite(name, missing)


@dataclass
class Outcomes:
    """What the run did because of missing prerequisites: test ids per name, and one reason per name."""

    skipped: dict[str, list[str]] = field(default_factory=dict)
    failed: dict[str, list[str]] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    stray_skips: list[str] = field(default_factory=list)


OUTCOMES = pytest.StashKey[Outcomes]()
POLICY = pytest.StashKey[Policy]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "prerequisite(name, missing): see tests/prerequisites.py `requires`")
    config.stash[POLICY] = Policy.from_env()
    config.stash[OUTCOMES] = Outcomes()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("prerequisite"):
        require(*mark.args)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    outcomes = item.config.stash[OUTCOMES]
    error = call.excinfo.value if call.excinfo is not None else None
    if isinstance(missing := getattr(error, "prerequisite", None), Missing):
        into = outcomes.skipped if report.skipped else outcomes.failed
        into.setdefault(missing.name, []).append(item.nodeid)
        outcomes.reasons.setdefault(missing.name, missing.reason)
    elif report.skipped and not hasattr(report, "wasxfail") and item.config.stash[POLICY].strict:
        reason = _reason(report)
        report.outcome = "failed"
        report.longrepr = f"skipped outside tests/prerequisites.py in a strict run (CI): {reason}"
        outcomes.stray_skips.append(item.nodeid)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    if report.skipped and collector.config.stash[POLICY].strict:
        reason = _reason(report)
        report.outcome = "failed"
        report.longrepr = f"module skipped outside tests/prerequisites.py in a strict run (CI): {reason}"
    return report


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    text = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return text.removeprefix("Skipped: ")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    policy, outcomes = config.stash[POLICY], config.stash[OUTCOMES]
    if not (policy.strict or policy.optional or outcomes.skipped or outcomes.failed or outcomes.stray_skips):
        return
    write = terminalreporter.write_line
    if policy.strict:
        mode = f"strict (CI or {STRICT_ENV}=1): a missing prerequisite fails unless declared optional"
    else:
        mode = f"local: a missing prerequisite skips (CI=true or {STRICT_ENV}=1 makes it fail)"
    terminalreporter.section("prerequisites")
    write(f"mode: {mode}")
    write(f"declared optional ({OPTIONAL_ENV}): {', '.join(sorted(policy.optional)) or 'none'}")
    for name in sorted(set(outcomes.skipped) | set(outcomes.failed)):
        skipped, failed = len(outcomes.skipped.get(name, [])), len(outcomes.failed.get(name, []))
        verdict = f"{skipped} skipped" if skipped else f"{failed} FAILED"
        write(f"  {name}: {verdict} ({outcomes.reasons[name]})")
    if not policy.strict and outcomes.skipped:
        names = ",".join(sorted(outcomes.skipped))
        write(f"a CI run fails on these unless it declares them: {OPTIONAL_ENV}={names}", yellow=True)
    if outcomes.stray_skips:
        write(f"{len(outcomes.stray_skips)} test(s) skipped outside the prerequisite mechanism: failed", red=True)
