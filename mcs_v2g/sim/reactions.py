"""How fast the charger reacted to an injected fault, measured on the physics in simulated time.

After each injection a watcher samples the plant every `WATCH_STEP_S` until the output is safe (current below
`LOW_CURRENT_A` and the contactors open) or `WATCH_FOR_S` passes: when the protection tripped, when the current
fell below the limit, when the contactors opened and at what current. `REQUIRED` says what IEC 61851-23 /
-23-3 ask for (PROTOCOL.md section 10) or, where PROTOCOL.md gives no figure, which timeout of ours or of the
family applies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from evse_emulator.hal import ContactorState
from evse_emulator.hal.mock import MockPlant
from evse_emulator.shutdown import LOW_CURRENT_A
from stack.clock import Clock

WATCH_STEP_S = 0.001
WATCH_FOR_S = 90.0  # longer than every timeout that can end a shutdown (the SECC's 60 s sequence timeout)


@dataclass(frozen=True, slots=True)
class Requirement:
    shutdown: str  # emergency | error | capability (the output goes on, smaller) | session
    rule: str
    limit_s: float | None  # the time the rule gives (None: no figure in PROTOCOL.md)


REQUIRED = {
    "over_voltage": Requirement("emergency", "IEC 61851-23 Table 103: above the limit for 9 ms", 0.009),
    "over_current": Requirement("emergency", "IEC 61851-23 Table CC.10: at once (no time in PROTOCOL.md)", None),
    "insulation": Requirement("error", "IEC 61851-23 Table CC.10: error shutdown (no time in PROTOCOL.md)", None),
    "module_loss": Requirement("capability", "the family's drop_after_s, then a smaller EVSE maximum", None),
    "derate": Requirement("capability", "the others take what a derating module cannot give", None),
    "can_silence": Requirement("error", "our I/O board watchdog (0.5 s without IO_Command)", 0.5),
    "contactor_weld": Requirement("error", "reported at the opening (welding detection)", None),
    "pre_charge": Requirement("error", "the charger gives up before the EV's 10 s PreCharge timeout", 10.0),
    "ev_silence": Requirement("session", "V2G_SECC_Sequence_Timeout 60 s (PROTOCOL.md 6)", 60.0),
}


@dataclass(slots=True)
class FaultRecord:
    """One injected fault and what the output did after it (times in s after the injection)."""

    name: str
    injected_s: float  # simulated time since the start
    current_before_a: float
    limit_crossed_s: float | None = None  # the output first went past the protection's limit (V or A)
    tripped_s: float | None = None  # the plant's own protection latched
    current_low_s: float | None = None
    contactors_open_s: float | None = None
    opened_at_a: float | None = None
    contactors_end: str = ""
    capability: dict[str, float | None] = field(default_factory=dict)  # a lost module: when the charger told less

    def json(self) -> dict[str, object]:
        need = REQUIRED.get(self.name.partition(":")[0])
        extra = dict(self.capability)

        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 4)

        return {
            "fault": self.name,
            "injected_s": round(self.injected_s, 3),
            "current_before_a": round(self.current_before_a, 1),
            "limit_crossed_after_s": r(self.limit_crossed_s),
            "tripped_after_s": r(self.tripped_s),
            "protection_took_s": (
                r(self.tripped_s - self.limit_crossed_s)
                if self.tripped_s is not None and self.limit_crossed_s is not None
                else None
            ),
            "current_below_5a_after_s": r(self.current_low_s),
            "contactors_open_after_s": r(self.contactors_open_s),
            "opened_at_a": None if self.opened_at_a is None else round(self.opened_at_a, 1),
            "contactors_end": self.contactors_end,
            "shutdown": need.shutdown if need else None,
            "required": need.rule if need else None,
            "required_s": need.limit_s if need else None,
            **extra,
        }


async def watch(
    name: str, plant: MockPlant, clock: Clock, start: float, current_before_a: float | None = None
) -> FaultRecord:
    """Sample `plant` from now until the output is safe; times relative to now. `current_before_a`: the current
    just before the fault (a fault can change it at once: a load dump)."""
    t0 = clock.now()
    plant.sync()
    before = plant.terminal.current_a if current_before_a is None else current_before_a
    record = FaultRecord(name, t0 - start, before)
    closed = False  # the contactors were seen closed (a fault injected before the session waits for them)
    while clock.now() - t0 < WATCH_FOR_S:
        plant.sync()
        now = clock.now() - t0
        state = plant.contactors.state()
        closed = closed or state is ContactorState.CLOSED
        current = plant.terminal.current_a
        if record.limit_crossed_s is None and _past_limit(plant):
            record.limit_crossed_s = now
        if record.tripped_s is None and plant.power_stage.fault() is not None:
            record.tripped_s = now
            if record.limit_crossed_s is None:  # crossed and tripped within one sample: at most a step ago
                record.limit_crossed_s = max(0.0, now - WATCH_STEP_S)
        if record.current_low_s is None and abs(current) < LOW_CURRENT_A:
            record.current_low_s = now
        if closed and record.contactors_open_s is None and state in (ContactorState.OPEN, ContactorState.WELDED):
            record.contactors_open_s, record.opened_at_a = now, current  # the current the contacts broke
        if record.contactors_open_s is not None and state in (ContactorState.OPEN, ContactorState.WELDED):
            break
        await clock.sleep_until(clock.now() + WATCH_STEP_S)
    record.contactors_end = plant.contactors.state().value
    return record


def _past_limit(plant: MockPlant) -> bool:
    """The output is past what its protection allows: the armed over-voltage limit, or the over-current."""
    stage, terminal = plant.power_stage, plant.terminal
    return terminal.voltage_v > stage.over_voltage_limit_v() or abs(terminal.current_a) > stage.over_current_limit_a()


def note_capability(
    record: FaultRecord, events: list[tuple[float, str]], advertised: list[tuple[float, float]], start: float
) -> None:
    """For a lost module: when the driver dropped it and when the truck was told the smaller maximum."""
    module = record.name.partition(":")[2]
    injected = record.injected_s
    dropped = next((t - start for t, e in events if e.startswith(f"module {module} dropped")), None)
    before = [w for t, w in advertised if t <= injected]
    after = next(((t, w) for t, w in advertised if t > injected and (not before or w < before[-1])), None)
    record.capability = {
        "dropped_after_s": None if dropped is None else round(dropped - injected, 3),
        "advertised_before_kw": round(before[-1] / 1000, 1) if before else None,
        "advertised_after_kw": None if after is None else round(after[1] / 1000, 1),
        "advertised_after_s": None if after is None else round(after[0] - injected, 3),
    }
