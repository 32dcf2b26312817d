"""What a truck is told before it plugs in: its battery, its needs, the service it asks for (TOML or flags).

vin = "WMA06XZZ1MP123456"
service = "mcs-bpt"          # dc | dc-bpt | mcs | mcs-bpt
control = "dynamic"          # dynamic | scheduled
initial_soc = 0.30           # fractions of the usable capacity
target_soc = 0.80
min_soc = 0.20
v2g_reserve_soc = 0.40       # never discharge below this
offers_v2g = true
departure_s = 3600           # seconds after plug-in (at most a week)
max_contactor_cycles = 10    # closings this session
loop_interval = 0.25         # s between DC_ChargeLoopReq (0.01 to 30)
leave_at_target = false      # stop once the target SoC is reached (else stay until departure)
charge_loops = 100           # optional bench limit: stop after this many charge loops

Every key is checked when the file is read (`stack.config_file`): its type (no strings or booleans for numbers,
no strings for booleans), its range, and across keys (min_soc <= target_soc); unknown keys are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from annotated_types import Ge, Gt, Interval, Le, Len

from stack.config_file import ConfigError, Layout, Problem, one_of, validate, values_of
from stack.session.services import SERVICE_NAMES

CONTROL_MODES = ("dynamic", "scheduled")
MAX_STAY_S = 7 * 86_400.0  # a week at the charger: longer is a typo, not a stay
# The EV paces the charge loop: faster than 100 per second is no ECU's loop (and a stress test, not a session);
# slower than 30 s risks the charger's 60 s V2G_SECC_Sequence_Timeout.
MIN_LOOP_INTERVAL_S = 0.01
MAX_LOOP_INTERVAL_S = 30.0

Service = Annotated[str, one_of(SERVICE_NAMES)]
ControlName = Annotated[str, one_of(CONTROL_MODES)]
Fraction = Annotated[float, Interval(ge=0.0, le=1.0)]
StaySeconds = Annotated[float, Gt(0.0), Le(MAX_STAY_S)]
LoopInterval = Annotated[float, Interval(ge=MIN_LOOP_INTERVAL_S, le=MAX_LOOP_INTERVAL_S)]
Count = Annotated[int, Ge(0)]
Identifier = Annotated[str, Len(1, 255)]  # EVCCID and EVSEID: 1 to 255 characters in -20


class TruckConfigError(ConfigError):
    """A truck setting is missing, unknown or out of range (the message names it)."""


@dataclass(frozen=True, slots=True)
class TruckConfig:
    vin: Identifier = "WMA06XZZ1MP123456"
    service: Service = "mcs-bpt"
    control: ControlName = "dynamic"
    initial_soc: Fraction = 0.30
    target_soc: Fraction = 0.80
    min_soc: Fraction = 0.20
    v2g_reserve_soc: Fraction = 0.40
    offers_v2g: bool = True
    departure_s: StaySeconds = 3600.0
    max_contactor_cycles: Count | None = 10
    loop_interval: LoopInterval = 0.25
    leave_at_target: bool = False
    charge_loops: Count | None = None

    def cross_check(self) -> list[Problem]:
        """What is wrong between fields (each field alone is checked by its type)."""
        if self.min_soc > self.target_soc:
            return [Problem("min_soc", f"must not exceed target_soc ({self.target_soc}), got {self.min_soc}")]
        return []

    def checked(self) -> TruckConfig:
        """This config, or a `TruckConfigError` naming every bad value."""
        return validate(TruckConfig, values_of(self), error=TruckConfigError)


LAYOUT = Layout(top=frozenset(values_of(TruckConfig())))


def load_truck_config(path: Path | None, **overrides: Any) -> TruckConfig:
    """The defaults, then the TOML file's keys, then `overrides` (flags; None values are skipped)."""
    values: dict[str, Any] = {}
    keys: dict[str, str] = {}
    if path is not None:
        values, keys = LAYOUT.read(path, TruckConfigError)
    flags = {k: v for k, v in overrides.items() if v is not None}
    return validate(TruckConfig, {**values, **flags}, keys=keys, path=path, error=TruckConfigError)
