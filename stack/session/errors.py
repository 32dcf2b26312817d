"""Whose fault it is: our side misused the protocol (`LocalProtocolError`) or the peer broke a rule
(`RemoteProtocolError`, `PeerTimeout`). Both carry the rule of the rulebook they are about."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .rules import Rule


class ProtocolError(Exception):
    """A rule of the -20 rulebook was (or would be) broken; `rule_id` names it ([V2G20-n] or MV-...)."""

    def __init__(self, message: str, rule: Rule | None = None) -> None:
        super().__init__(f"[{rule.id}] {message}" if rule is not None else message)
        self.rule = rule

    @property
    def rule_id(self) -> str | None:
        return None if self.rule is None else self.rule.id


class LocalProtocolError(ProtocolError, RuntimeError):
    """Our side would break a rule (we refuse to send it) or misused a machine (feeding it after close)."""


class RemoteProtocolError(ProtocolError, ValueError):
    """The peer sent something a rule forbids: wrong message, wrong session, a response that breaks a rule."""


class PeerTimeout(RemoteProtocolError):
    """The peer did not act before a timer of the rulebook ran out."""
