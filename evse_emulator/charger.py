"""The charger as a product: its hardware through the HAL, its controller and energy policy, its SECC settings."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stack.clock import Clock
from stack.session.actions import Close
from stack.session.pnc import authorization_summary
from stack.session.secc import SeccConfig, SeccSession
from stack.transport.drive import Observers
from stack.transport.secc_server import SeccServer

from .config import ChargerConfig, ChargerConfigError
from .controller import PlantEvseController
from .energy.policy import ChargeToTarget, ScriptedProfile, SetpointPolicy
from .hal import Hal, VehicleTerminal, make_hal
from .hal.mock import MockPlant, ReportedVehicle
from .shutdown import FaultSupervisor

PLANT_TICK_S = 0.1  # s: how often a simulated plant is brought up to the clock when nobody reads it
HARDWARE_READY_S = 30.0  # s a charger waits at start for its power stage (two discovery cycles of the slowest family)


@dataclass
class Charger:
    """An MCS charger: one output (its HAL), one session at a time, the SECC settings it serves them with."""

    config: ChargerConfig
    hal: Hal
    clock: Clock
    policy: SetpointPolicy
    secc_config: SeccConfig
    supervisor: FaultSupervisor
    _session_start: tuple[float, float, float] | None = None

    @classmethod
    def build(
        cls, config: ChargerConfig, clock: Clock, *, vehicle: VehicleTerminal | None = None, hal: Hal | None = None
    ) -> Charger:
        """Assemble the charger on `config.hal` (`mock`, `can:<family>`), unless a `hal` is handed in.

        The mock plant models the truck behind the cable: `vehicle` when it is simulated in this process, else a
        `ReportedVehicle` built from what the EV says over -20.
        """
        config = config.checked()
        if hal is None:
            settings = dict(config.hal_settings)
            if config.hal.partition(":")[0] == "mock":
                settings.update(vehicle=vehicle or ReportedVehicle(), clock=clock)
                settings.setdefault("rated_voltage_v", config.max_voltage)
                settings.setdefault("rated_current_a", config.max_current)
                settings.setdefault("rated_power_w", config.max_power)
            else:
                settings["clock"] = clock
            try:
                hal = make_hal(config.hal, **settings)
            except (TypeError, ValueError) as exc:
                raise ChargerConfigError(f"HAL {config.hal!r}: {exc}") from None
        policy = ScriptedProfile(config.steps) if config.steps else ChargeToTarget()
        return cls(config, hal, clock, policy, config.secc_config(), FaultSupervisor(hal))

    @property
    def plant(self) -> MockPlant | None:
        plant = self.hal.plant
        return plant if isinstance(plant, MockPlant) else None

    def controller(self) -> PlantEvseController:
        """The decisions of one session (the hardware is shared: sessions on one output follow each other)."""
        self._session_start = self._energy()
        return PlantEvseController(
            self.hal,
            self.config.ratings(),
            self.policy,
            evse_identifier=self.config.evse_id,
            supervisor=self.supervisor,
            metering_confirmation_wh=self.config.metering_confirmation_wh,
        )

    def _energy(self) -> tuple[float, float, float]:
        """Meter registers (Wh in, Wh out) and cable loss (Wh) now."""
        meter = self.hal.meter.read()
        loss = self.plant.cable_loss_wh if self.plant is not None else 0.0
        return meter.imported_wh, meter.exported_wh, loss

    def server(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        trace_dir: Path | None = None,
        observers: Observers | None = None,
        ended: Callable[[SeccSession, Close], None] | None = None,
    ) -> SeccServer:
        """The SECC server of this charger: its sessions, its settings and its transport limits (`[limits]`)."""
        return SeccServer(
            self.controller,
            self.secc_config,
            clock=self.clock,
            ssl_context=ssl_context,
            limits=self.config.limits,
            trace_dir=trace_dir,
            observers=None if observers is None else (lambda session: observers),
            ended=ended,
        )

    async def wait_ready(self, timeout_s: float = HARDWARE_READY_S) -> bool:
        """Wait until the power stage can deliver (a CAN rack has found and rated its modules); False on timeout."""
        deadline = self.clock.now() + timeout_s
        while True:
            capability = self.hal.power_stage.capability()
            if capability is None or capability.max_current_a > 0:
                return True
            if self.clock.now() >= deadline:
                return False
            await self.clock.sleep_until(self.clock.now() + PLANT_TICK_S)

    async def run_hardware(self) -> None:
        """The devices' background work: a CAN driver's bus I/O, or keeping a simulated plant on the clock
        (protection and discharge act while nobody reads it); the fault supervisor watches either.
        """
        if self.hal.service is not None:
            if self.hal.listen is not None:
                self.hal.listen(lambda: self.supervisor.check(self.clock.now()))
            await self.hal.service()
            return
        while True:
            await self.clock.sleep_until(self.clock.now() + PLANT_TICK_S)
            if self.hal.plant is not None:
                self.hal.plant.sync()
            self.supervisor.check(self.clock.now())

    def summary(self, session: SeccSession, close: Close) -> dict:
        """One session as the charger saw it: how it ended and what its meter counted meanwhile."""
        start = self._session_start or (0.0, 0.0, 0.0)
        now = self._energy()
        imported, exported, loss = (b - a for a, b in zip(start, now, strict=True))
        out = {
            "evse_id": self.config.evse_id,
            "session_id": session.session_id.hex().upper(),
            "result": "ok" if close.ok else "FAILED",
            "reason": close.reason,
            "service": None if session.service is None else session.service.name,
            **authorization_summary(session.state.authorization, session.ctx.emaid),
            "meter_imported_kwh": round(imported / 1000, 4),
            "meter_exported_kwh": round(exported / 1000, 4),
            "faults": [f"{f.kind}: {f.detail}" for f in self.supervisor.faults()],
        }
        if self.plant is not None:
            out["cable_loss_kwh"] = round(loss / 1000, 4)
        return out
