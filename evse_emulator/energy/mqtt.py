"""One depot node's link to an MQTT broker (aiomqtt): publish, subscribe, a retained status with a last will,
and reconnection. The only I/O of the depot's MQTT side; the contract is `topics.py`.

    link = MqttLink("mqtt://127.0.0.1:1883", Topics("yard"), node="mcs1", subscribe=[topics.setpoint("mcs1")])
    task = asyncio.create_task(link.run(on_message))   # on_message(topic, payload): sans-I/O handling
    link.publish(topics.telemetry("mcs1"), telemetry.payload())

Messages published while the broker is away wait in a bounded queue and go out after the reconnect (the oldest
are dropped beyond `queue_limit`, and counted); the node's status is "online" (retained) while connected, "offline"
when it stops, and the broker publishes "offline" for it when the connection is lost (the last will).

The session is MQTT 5's, named by the site and the node: the first connection of a run starts it afresh (nothing a
run before left queued for that name reaches this one), a reconnect resumes it (what came for it while this link was
away is delivered; across a broker restart only when the broker persists its sessions), and the broker forgets it
`SESSION_EXPIRY_S` after a node has gone.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .topics import OFFLINE, ONLINE, Topics

log = logging.getLogger("evse_emulator.energy.mqtt")

RECONNECT_S = (0.2, 0.5, 1.0, 2.0, 5.0)  # back-off between attempts, the last one repeated
SESSION_EXPIRY_S = 3600  # the broker keeps a node's session (and what comes for it) this long after it went
OFFLINE_WITHIN_S = 1.0  # a node that stops says "offline" if the broker takes it within this time
PASSWORD_ENV = "MCS_V2G_MQTT_PASSWORD"  # the password of a URL that names a user only (kept off the command line)


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str, env: Mapping[str, str] = os.environ) -> BrokerAddress:
        """`mqtt://[USER[:PASSWORD]@]HOST[:PORT]` (1883 by default; USER and PASSWORD percent-encoded). A URL with
        a user and no password takes the password from `PASSWORD_ENV` in `env` when it is set."""
        shown = redacted(url)
        if url.count("@") > 1:
            raise ValueError(f"an '@' in the user or password must be written %40, got {shown!r}")
        try:
            parts = urlsplit(url)
            port = parts.port or 1883
        except ValueError:
            raise ValueError(f"bad host or port in {shown!r}") from None
        if parts.scheme != "mqtt" or not parts.hostname:
            raise ValueError(f"the broker must be mqtt://[USER:PASSWORD@]HOST[:PORT], got {shown!r}")
        user = None if parts.username is None else unquote(parts.username)
        password = unquote(parts.password) if parts.password is not None else env.get(PASSWORD_ENV) if user else None
        return cls(parts.hostname, port, user, password)

    def client(self, **options: Any) -> aiomqtt.Client:
        """An aiomqtt client for this broker, logged in when the URL names a user."""
        return aiomqtt.Client(self.host, self.port, username=self.username, password=self.password, **options)


def redacted(url: str) -> str:
    """A broker URL as it may be shown or logged: whatever stands between the user's ':' and the last '@' (the
    password, however it is written) replaced by `***`."""
    head, at, host = url.rpartition("@")
    if not at:
        return url
    start = head.index("//") + 2 if "//" in head else head.find(":") + 1
    user, colon, _ = head[start:].partition(":")
    return f"{head[:start]}{user}{':***' if colon else ''}@{host}"


class MqttLink:
    """A node's connection: `run` keeps it up until cancelled; `publish` never blocks."""

    def __init__(
        self,
        url: str,
        topics: Topics,
        node: str,
        subscribe: Sequence[str] = (),
        queue_limit: int = 10_000,
    ) -> None:
        self.address = BrokerAddress.parse(url)
        self.topics = topics
        self.node = node
        self.subscriptions = list(subscribe)
        self._outbox: deque[tuple[str, bytes, bool]] = deque()
        self._queue_limit = queue_limit
        self._wake = asyncio.Event()
        self.connected = asyncio.Event()
        self.dropped = 0  # messages dropped while the broker was away and the queue was full
        self.connections = 0

    @property
    def pending(self) -> int:
        """Messages the broker has not acknowledged yet (queued, or in flight)."""
        return len(self._outbox)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        if len(self._outbox) >= self._queue_limit:
            self._outbox.popleft()
            self.dropped += 1
        self._outbox.append((topic, payload, retain))
        self._wake.set()

    async def run(self, on_message: Callable[[str, bytes], None]) -> None:
        """Connect, subscribe, pass every message to `on_message`, send the outbox; reconnect after a loss."""
        attempt = 0
        status = self.topics.status(self.node)
        will = aiomqtt.Will(status, OFFLINE.encode(), qos=1, retain=True)
        session = Properties(PacketTypes.CONNECT)
        session.SessionExpiryInterval = SESSION_EXPIRY_S
        while True:
            client = self.address.client(
                identifier=f"mcs-v2g/{self.topics.site}/{self.node}",  # '/' is in no site name
                protocol=aiomqtt.ProtocolVersion.V5,
                will=will,
                clean_start=self.connections == 0,
                properties=session,
            )
            entered = False
            try:
                async with client:
                    entered, attempt = True, 0
                    self.connections += 1
                    try:
                        _stop_if_cancelled()
                        await client.publish(status, ONLINE.encode(), qos=1, retain=True)
                        for topic in self.subscriptions:
                            _stop_if_cancelled()
                            await client.subscribe(topic, qos=1)
                        _stop_if_cancelled()
                        self.connected.set()
                        await self._serve(client, on_message)
                    except asyncio.CancelledError:  # a clean DISCONNECT follows, which drops the last will
                        await self._say_offline(client, status)
                        raise
            except asyncio.CancelledError:
                if not entered:  # stopped while it connects: aiomqtt leaves the socket open
                    _close_socket(client)
                raise
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                delay = RECONNECT_S[min(attempt, len(RECONNECT_S) - 1)]
                attempt += 1
                log.warning("MQTT %s:%d: %s; reconnecting in %.1f s", self.address.host, self.address.port, exc, delay)
                await asyncio.sleep(delay)

    async def _say_offline(self, client: aiomqtt.Client, status: str) -> None:
        """A clean stop: the retained status says so (the last will is only for a lost connection)."""
        try:
            async with asyncio.timeout(OFFLINE_WITHIN_S):
                await client.publish(status, OFFLINE.encode(), qos=1, retain=True)
        except (TimeoutError, aiomqtt.MqttError):
            log.warning("MQTT: the broker did not take this node's offline status")

    async def _serve(self, client: aiomqtt.Client, on_message: Callable[[str, bytes], None]) -> None:
        sender = asyncio.ensure_future(self._send(client))
        try:
            async for message in client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
                try:
                    on_message(str(message.topic), payload)
                except Exception:  # a handler bug must not drop the link: said, and on we go
                    log.exception("MQTT message on %s not handled", message.topic)
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    async def _send(self, client: aiomqtt.Client) -> None:
        while True:
            while self._outbox:
                topic, payload, retain = self._outbox[0]
                await client.publish(topic, payload, qos=1, retain=retain)
                self._outbox.popleft()
                _stop_if_cancelled()
            self._wake.clear()
            await self._wake.wait()


def _stop_if_cancelled() -> None:
    """Raise the cancel of this task that an awaited aiomqtt call returned through: Python 3.11's asyncio.wait_for
    (in aiomqtt's connect, publish and subscribe) returns the broker's answer when it comes with the cancel and
    drops the cancel, and the link would go on (a sender waiting for its next message forever)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _close_socket(client: aiomqtt.Client) -> None:
    """Close the socket of a client cancelled while it connects (its `async with` was never entered, so nothing
    else will; paho's public `socket()`, reached through aiomqtt's client)."""
    paho = getattr(client, "_client", None)
    sock = paho.socket() if paho is not None else None
    if sock is not None:
        sock.close()
