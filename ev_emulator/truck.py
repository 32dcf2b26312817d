"""The truck as a product: battery/BMS, charging needs and the EVCC controller, built from a `TruckConfig`."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stack.clock import Clock
from stack.session.actions import Close
from stack.session.config import EvccConfig
from stack.session.evcc import EvccSession
from stack.session.services import SERVICE_NAMES, ControlMode
from stack.session.timers import EvccTimers
from stack.transport.drive import Observers
from stack.transport.evcc_client import run_evcc

from .battery import PackSpec, TruckBattery
from .config import TruckConfig
from .controller import TruckController
from .inlet import Inlet, ReportedSupply
from .needs import ChargingNeeds

CONTROL_MODES = {"dynamic": ControlMode.DYNAMIC, "scheduled": ControlMode.SCHEDULED}
REPEAT_INTERVAL = 0.1  # s between repeated requests (Ongoing loops, pre-charge, welding detection)


@dataclass
class Truck:
    """A heavy truck that plugs in at `clock`'s present time and charges according to its config."""

    config: TruckConfig
    battery: TruckBattery
    needs: ChargingNeeds
    controller: TruckController
    evcc_config: EvccConfig
    plugged_in: float

    @classmethod
    def build(
        cls, config: TruckConfig, clock: Clock, inlet: Inlet | None = None, pack: PackSpec | None = None
    ) -> Truck:
        """Assemble the truck (on `pack`, else the default 560 kWh pack); without an `inlet` its pack follows what
        the charger reports (`ReportedSupply`)."""
        config = config.checked()
        now = clock.now()
        battery = TruckBattery(spec=pack or PackSpec(), soc=config.initial_soc)
        needs = ChargingNeeds(
            departure_time=now + config.departure_s,
            target_soc=config.target_soc,
            min_soc=min(config.min_soc, config.target_soc),
            offers_v2g=config.offers_v2g,
            v2g_reserve_soc=config.v2g_reserve_soc,
            max_contactor_cycles=config.max_contactor_cycles,
        )
        battery.contactors.start_session(needs.max_contactor_cycles)
        controller = TruckController(
            battery,
            needs,
            inlet if inlet is not None else ReportedSupply(battery, now),
            service=SERVICE_NAMES[config.service],
            control_mode=CONTROL_MODES[config.control],
            vin=config.vin,
            max_charge_loops=config.charge_loops,
            leave_at_target=config.leave_at_target,
        )
        interval = min(REPEAT_INTERVAL, config.loop_interval)
        timers = EvccTimers(loop_interval=interval, charge_loop_interval=config.loop_interval)
        return cls(config, battery, needs, controller, EvccConfig(timers=timers), now)

    def plug_into(self, inlet: Inlet) -> None:
        """Connect the truck to a cable whose physics someone else integrates (a simulated charger's plant)."""
        self.controller.inlet = inlet

    def session(self) -> EvccSession:
        return EvccSession(self.controller, self.evcc_config)

    async def charge_at(
        self,
        host: str,
        port: int,
        clock: Clock,
        *,
        ssl_context: ssl.SSLContext | None = None,
        trace: Path | None = None,
        observers: Observers | None = None,
        accept_peer: Callable[[asyncio.StreamWriter], str | None] | None = None,
    ) -> tuple[Close, EvccSession]:
        """Connect to the SECC at `host`:`port` and run one session (`accept_peer`: see `run_evcc`)."""
        return await run_evcc(
            host,
            port,
            self.controller,
            self.evcc_config,
            clock=clock,
            ssl_context=ssl_context,
            trace=trace,
            observers=observers,
            accept_peer=accept_peer,
        )

    def summary(self) -> dict:
        """The battery's side of the session: energy at its terminals, SoC, contactor events."""
        b = self.battery
        return {
            "initial_soc": round(self.config.initial_soc * 100, 2),
            "final_soc": round(b.soc * 100, 2),
            "target_soc": round(self.config.target_soc * 100, 2),
            "battery_in_kwh": round(b.energy_in_wh / 1000, 4),
            "battery_out_kwh": round(b.energy_out_wh / 1000, 4),
            "battery_loss_kwh": round(b.loss_wh / 1000, 4),
            "charge_loops": self.controller.charge_loops,
            "faults": dict(b.faults),
        }
