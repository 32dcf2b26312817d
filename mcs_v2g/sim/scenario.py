"""What a simulation plays: the truck's state and needs, the charger, the energy plan, injected faults."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from annotated_types import Ge, Interval, MinLen

from ev_emulator.config import ControlName, Count, Fraction, LoopInterval, Service, StaySeconds, TruckConfig
from evse_emulator.config import Amps, ChargerConfig, Plan, TimeoutSeconds, Volts, Watts
from evse_emulator.hal.mock import settings_for_loop
from stack.config_file import EPOCH, MAX_EPOCH_S, ConfigError, Layout, Problem, one_of, validate, values_of

START = 1_795_294_800.0  # 2026-11-21 21:00 UTC: a truck arrives at the depot in the evening
# At --speed max a charge loop costs about a millisecond of wall time: more loops than this is a typo.
MAX_SIM_LOOPS = 100_000
MAX_MODULES = 200  # a 3.75 MW rack of 22 kW modules needs 171

Instant = Annotated[float, EPOCH, Interval(ge=0.0, le=MAX_EPOCH_S)]
ScenarioPlan = Annotated[Plan, MinLen(1)]  # a scenario plays a plan (the charger alone may have none)
Ohms = Annotated[float, Ge(0.0)]
Seconds = Annotated[float, Ge(0.0)]
AUTH_MODES = ("eim", "pnc")
AuthMode = Annotated[str, one_of(AUTH_MODES)]


class ScenarioError(ConfigError):
    """The scenario file cannot be read or has a bad value."""


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str = "MCS V2G at the depot: charge, feed the evening peak, charge for departure"
    service: Service = "mcs-bpt"
    control: ControlName = "dynamic"
    start: Instant = START  # epoch seconds, or a TOML date-time with an offset
    loop_interval: LoopInterval = 2.0  # s of simulated time between DC_ChargeLoopReq
    auth: AuthMode = "eim"  # pnc: Plug & Charge with a contract of a PKI made for the run
    install_contract: bool = False  # pnc: the truck starts without a contract and installs one first
    # truck
    initial_soc: Fraction = 0.25
    target_soc: Fraction = 0.90
    min_soc: Fraction = 0.20
    v2g_reserve_soc: Fraction = 0.40
    offers_v2g: bool = True
    departure_s: StaySeconds = 5400.0  # from the start
    max_contactor_cycles: Count | None = 10
    # charger
    max_voltage: Volts = 1250.0
    max_current: Amps = 3000.0
    max_power: Watts = 3_750_000.0
    hal: Annotated[str, MinLen(1)] = "mock"  # the charger's hardware: the mock plant, or can:<family> over a bus
    modules: Annotated[int, Interval(ge=1, le=MAX_MODULES)] | None = None  # CAN: modules in the rack (None: enough)
    series: Annotated[int, Interval(ge=1, le=4)] = 1  # CAN: modules in series in a string (2 reach 1 250 V)
    # energy plan: (seconds from the start of energy transfer, W; + charge, - discharge)
    steps: ScenarioPlan = ((0.0, 750_000.0), (1200.0, -750_000.0), (2400.0, 750_000.0))
    # faults
    insulation_fault_ohm: Ohms | None = None
    ev_stops_answering_s: Seconds | None = None  # the truck hangs (no close, no answer) this long after the start
    charger_stops_answering_s: Seconds | None = None  # the same for the charger
    plant_faults: tuple[str, ...] = ()  # CAN plant faults, NAME@SECONDS from the start (see hal/can/plant.py)
    secc_sequence_timeout: TimeoutSeconds = 60.0

    @property
    def duration(self) -> float:
        return self.departure_s

    def truck(self) -> TruckConfig:
        return TruckConfig(
            service=self.service,
            control=self.control,
            initial_soc=self.initial_soc,
            target_soc=self.target_soc,
            min_soc=self.min_soc,
            v2g_reserve_soc=self.v2g_reserve_soc,
            offers_v2g=self.offers_v2g,
            departure_s=self.departure_s,
            max_contactor_cycles=self.max_contactor_cycles,
            loop_interval=self.loop_interval,
        )

    def charger(self) -> ChargerConfig:
        plant = settings_for_loop(self.loop_interval)
        return ChargerConfig(
            max_voltage=self.max_voltage,
            max_current=self.max_current,
            max_power=self.max_power,
            offer=(self.service,),
            sequence_timeout=self.secc_sequence_timeout,
            hal_settings=plant,
            steps=self.steps,
        )

    def cross_check(self) -> list[Problem]:
        """What is wrong between fields: the truck's and the charger's own checks, the loop count, the faults."""
        problems = []
        for config, names in ((self.truck, {}), (self.charger, CHARGER_KEYS)):
            try:
                config().checked()
            except ConfigError as exc:
                problems += exc.renamed(names)
        loops = self.departure_s / self.loop_interval
        if loops > MAX_SIM_LOOPS:
            problems.append(
                Problem(
                    "loop_interval",
                    f"too short: {loops:.0f} charge loops before departure_s"
                    f" (at most {MAX_SIM_LOOPS}), got {self.loop_interval}",
                )
            )
        if self.loop_interval >= self.secc_sequence_timeout:
            problems.append(
                Problem(
                    "loop_interval",
                    "must be shorter than secc_sequence_timeout"
                    f" ({self.secc_sequence_timeout} s), got {self.loop_interval}",
                )
            )
        problems += self._hal_problems()
        if self.install_contract and self.auth != "pnc":
            problems.append(Problem("install_contract", 'needs auth = "pnc"'))
        for name in ("ev_stops_answering_s", "charger_stops_answering_s"):
            value = getattr(self, name)
            if value is not None and value >= self.departure_s:
                problems.append(Problem(name, f"must be before departure_s ({self.departure_s} s), got {value}"))
        return problems

    def rack_modules(self) -> int:
        """CAN: the modules in the rack: `modules`, else enough for the most the session can draw (the truck's
        BMS power, the plan's largest step, within the charger's rating) plus one spare string, in whole strings."""
        from ev_emulator.battery import PackSpec
        from evse_emulator.hal.can.family import family

        if self.modules is not None:
            return self.modules
        plan_w = max(abs(p) for _, p in self.steps)
        peak_w = min(max(plan_w, PackSpec().max_power), self.max_power)
        string_w = family(self.hal.partition(":")[2]).rating.rated_power_w * self.series
        return (math.ceil(peak_w / string_w) + 1) * self.series

    def _hal_problems(self) -> list[Problem]:
        from evse_emulator.hal.can.family import family_names
        from evse_emulator.hal.can.plant import PER_MODULE, Fault

        driver, _, name = self.hal.partition(":")
        if self.hal != "mock" and (driver != "can" or name not in family_names()):
            choices = ", ".join(["mock", *(f"can:{n}" for n in family_names())])
            return [Problem("hal", f"must be one of {choices}, got {self.hal!r}")]
        problems = []
        if self.hal == "mock" and (self.plant_faults or self.modules is not None or self.series != 1):
            problems.append(Problem("hal", "modules, series and plant_faults need a can:<family> HAL"))
        if self.modules is not None and self.modules % self.series:
            problems.append(Problem("modules", f"must be a multiple of series ({self.series}), got {self.modules}"))
        for text in self.plant_faults:
            try:
                fault = Fault.parse(text)
            except ValueError as exc:
                problems.append(Problem("plant_faults", str(exc)))
                continue
            if fault.name in PER_MODULE and self.hal != "mock" and fault.module >= self.rack_modules():
                problems.append(Problem("plant_faults", f"{text}: the rack has modules 0..{self.rack_modules() - 1}"))
            if fault.at_s >= self.departure_s:
                problems.append(Problem("plant_faults", f"{text}: must be before departure_s ({self.departure_s} s)"))
        return problems

    def checked(self) -> Scenario:
        """This scenario, or a `ScenarioError` naming every bad value."""
        return validate(Scenario, values_of(self), error=ScenarioError)


def overnight() -> Scenario:
    """An 8-hour overnight MCS_BPT session (the benchmark): slow charge, V2G at the evening peak, top-up."""
    return Scenario(
        name="overnight depot session, 8 h",
        initial_soc=0.20,
        departure_s=8 * 3600.0,
        loop_interval=10.0,
        steps=((0.0, 300_000.0), (2 * 3600.0, -500_000.0), (3 * 3600.0, 200_000.0), (6 * 3600.0, 750_000.0)),
    )


def load(path: Path | None) -> Scenario:
    """The default scenario, with the values of a TOML file (flat keys, or in [truck]/[charger]/[plan]/[faults])."""
    if path is None:
        return Scenario()
    values, keys = LAYOUT.read(path, ScenarioError)
    return validate(Scenario, values, keys=keys, path=path, error=ScenarioError)


def check(s: Scenario) -> list[str]:
    """What is wrong with a scenario (empty when it can run)."""
    try:
        s.checked()
    except ScenarioError as exc:
        return [str(p) for p in exc.problems]
    return []


# the charger's names for the scenario's fields (in the charger's own check)
CHARGER_KEYS = {"sequence_timeout": "secc_sequence_timeout", "offer": "service", "min_voltage": "max_voltage"}
LAYOUT = Layout(
    top=frozenset(values_of(Scenario())),
    sections={
        "truck": frozenset(
            {
                "initial_soc",
                "target_soc",
                "min_soc",
                "v2g_reserve_soc",
                "offers_v2g",
                "departure_s",
                "max_contactor_cycles",
                "loop_interval",
                "auth",
                "install_contract",
            }
        ),
        "charger": frozenset(
            {"max_voltage", "max_current", "max_power", "secc_sequence_timeout", "hal", "modules", "series"}
        ),
        "plan": frozenset({"steps"}),
        "faults": frozenset(
            {"insulation_fault_ohm", "ev_stops_answering_s", "charger_stops_answering_s", "plant_faults"}
        ),
    },
)
