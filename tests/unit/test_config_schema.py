"""The config schemas at the door: strict types, finite ranges, cross-field checks, misplaced and duplicate keys,
each refused with the file, the key path and the reason (stack/config_file.py and the scenario's schema)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated

import pytest
from annotated_types import Ge

from evse_emulator import load_charger_config
from evse_emulator.config import MAX_PLAN_STEPS
from mcs_v2g.sim.scenario import START, Scenario, ScenarioError, check, load
from stack.config_file import MAX_FILE_BYTES, MAX_PROBLEMS_SHOWN, ConfigError, Layout, Problem, validate


@dataclass(frozen=True, slots=True)
class Sample:
    rate: Annotated[float, Ge(0.0)] = 1.0
    on: bool = True
    count: int | None = None
    pairs: tuple[tuple[float, float], ...] = ()

    def cross_check(self) -> list[Problem]:
        return [Problem("count", "must not exceed rate")] if self.count is not None and self.count > self.rate else []


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"rate": True}, "rate: must be a number, got true"),
        ({"rate": "1.5"}, "rate: must be a number, got '1.5'"),
        ({"rate": float("nan")}, "rate: must be a finite number"),
        ({"rate": float("-inf")}, "rate: must be a finite number"),
        ({"rate": -1}, "rate: must be greater than or equal to 0, got -1"),
        ({"on": "yes"}, "on: must be true or false, got 'yes'"),
        ({"on": 1}, "on: must be true or false, got 1"),
        ({"count": 2.0}, "count: must be a whole number"),
        ({"count": False}, "count: must be a whole number, got false"),
        ({"pairs": [[0, float("nan")]]}, "pairs[0][1]: must be a finite number"),
        ({"pairs": [[0, 1, 2]]}, "pairs[0]: must have at most 2 items"),
        ({"rate": 1, "count": 5}, "count: must not exceed rate"),
        ({"bogus": 1}, "bogus: unknown key"),
    ],
)
def test_strict_types_ranges_and_cross_checks(values: dict, says: str) -> None:
    with pytest.raises(ConfigError) as refused:
        validate(Sample, values, path="x.toml")
    assert str(refused.value).startswith("x.toml: ") and says in str(refused.value)


def test_every_bad_value_is_named_on_one_line() -> None:
    with pytest.raises(ConfigError) as refused:
        validate(Sample, {"rate": -1, "on": "no"}, keys={"rate": "limits.rate"})
    assert [p.key for p in refused.value.problems] == ["limits.rate", "on"]
    assert "\n" not in str(refused.value)


def test_good_values_are_converted_to_the_dataclass() -> None:
    sample = validate(Sample, {"rate": 2, "pairs": [[0, 1], [5, -2.5]]})
    assert sample == Sample(rate=2.0, pairs=((0.0, 1.0), (5.0, -2.5)))
    assert isinstance(sample.rate, float) and isinstance(sample.pairs, tuple)


LAYOUT = Layout(top=frozenset({"name", "rate"}), sections={"limits": frozenset({"rate"}), "x": frozenset({"on"})})


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"rate": 1, "limits": {"rate": 2}}, "limits.rate: set twice: also as rate"),
        ({"nope": {"a": 1}}, "[nope]: unknown section; known: limits, x"),
        ({"limits": 3}, "limits: must be a table [limits]"),
        ({"limits": {"on": True}}, "limits.on: belongs in [x]"),
        ({"on": True}, "on: belongs in [x]"),
        ({"zzz": 1}, "zzz: unknown key; known here: name, rate"),
    ],
)
def test_layout_refuses_misplaced_and_duplicate_keys(data: dict, says: str) -> None:
    with pytest.raises(ConfigError) as refused:
        LAYOUT.flatten(data)
    assert says in str(refused.value)


def test_layout_gives_each_field_its_key_path() -> None:
    assert LAYOUT.flatten({"name": "a", "limits": {"rate": 2}}) == (
        {"name": "a", "rate": 2},
        {"name": "name", "rate": "limits.rate"},
    )


# ------------------------------------------------------------------------------------------------ scenario

BAD_SCENARIO = {
    "nan power": ("max_power = nan", "max_power: must be a finite number, got nan"),
    "inf power": ("max_power = inf", "max_power: must be a finite number, got inf"),
    "negative power": ("max_power = -1", "max_power: must be greater than 0"),
    "inf departure": ("departure_s = inf", "departure_s: must be a finite number"),
    "departure in a year": ("departure_s = 31536000", "departure_s: must be less than or equal"),
    "start as a word": ('start = "yesterday"', "start: must be seconds since 1970 (UTC) or a date-time"),
    "start without offset": ("start = 2026-11-21T18:00:00", "start: must be seconds since 1970"),
    "negative start": ("start = -1", "start: must be greater than or equal to 0"),
    "string as bool": ('offers_v2g = "no"', "offers_v2g: must be true or false, got 'no'"),
    "bool as soc": ("initial_soc = true", "initial_soc: must be a number, got true"),
    "soc above 1": ("target_soc = 1.2", "target_soc: must be less than or equal to 1"),
    "millisecond loop": ("loop_interval = 0.001", "loop_interval: must be greater than or equal to 0.01"),
    "too many loops": ("loop_interval = 0.05\ndeparture_s = 86400", "loop_interval: too short: 1728000 charge loops"),
    "loop beyond the sequence timeout": ("loop_interval = 20\nsecc_sequence_timeout = 10", "must be shorter than"),
    "no plan": ("steps = []", "steps: must have at least 1 item"),
    "nan in steps": ("steps = [[0, nan]]", "steps[0][1]: must be a finite number"),
    "negative step time": ("steps = [[-5, 1000]]", "steps[0][0]: must be greater than or equal to 0"),
    "steps out of order": ("steps = [[0, 1000], [600, -1000], [600, 5]]", "steps[2][0]: must be later"),
    "unknown section": ("[bogus]\ntarget_soc = 0.5", "[bogus]: unknown section"),
    "unknown key": ("battery_kwh = 5", "battery_kwh: unknown key"),
    "key in the wrong section": ("[truck]\nmax_power = 5", "truck.max_power: belongs in [charger]"),
    "negative insulation fault": ("insulation_fault_ohm = -5", "insulation_fault_ohm: must be greater than or equal"),
    "negative silence": ("[faults]\nev_stops_answering_s = -1", "faults.ev_stops_answering_s: must be greater"),
    "silence after departure": ("charger_stops_answering_s = 6000", "charger_stops_answering_s: must be before"),
    "key set twice": ("target_soc = 0.5\n[truck]\ntarget_soc = 0.9", "truck.target_soc: set twice: also as target_soc"),
    "min above target": ("min_soc = 0.9\ntarget_soc = 0.5", "min_soc: must not exceed target_soc"),
    "unknown service": ('service = "ccs"', "service: must be one of dc, dc-bpt, mcs, mcs-bpt"),
    "rated below the charger's minimum": ("max_voltage = 100", "max_voltage: min_voltage (200.0 V) must be below"),
    "timeout zero": ("secc_sequence_timeout = 0", "secc_sequence_timeout: must be greater than or equal to 1"),
    "not TOML": ("initial_soc = = 1", "not a TOML file"),
}


@pytest.mark.parametrize("name", list(BAD_SCENARIO))
def test_bad_scenario_is_refused_with_file_key_and_reason(tmp_path: Path, name: str) -> None:
    text, says = BAD_SCENARIO[name]
    path = tmp_path / "scenario.toml"
    path.write_text(text + "\n")
    with pytest.raises(ScenarioError) as refused:
        load(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: ") and says in message and "\n" not in message


def test_missing_scenario_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="absent.toml: no such file"):
        load(tmp_path / "absent.toml")


def test_flat_and_sectioned_scenarios_are_the_same(tmp_path: Path) -> None:
    flat = tmp_path / "flat.toml"
    flat.write_text("initial_soc = 0.3\nmax_power = 1000000\nsteps = [[0, 500000]]\ninsulation_fault_ohm = 50000\n")
    tables = tmp_path / "tables.toml"
    tables.write_text(
        "[truck]\ninitial_soc = 0.3\n[charger]\nmax_power = 1000000\n[plan]\nsteps = [[0, 500000]]\n"
        "[faults]\ninsulation_fault_ohm = 50000\n"
    )
    assert (
        load(flat)
        == load(tables)
        == replace(Scenario(), initial_soc=0.3, max_power=1e6, steps=((0.0, 5e5),), insulation_fault_ohm=5e4)
    )


def test_start_takes_a_toml_date_time(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text("start = 2026-11-21T22:00:00+01:00\n")
    assert load(path).start == START == dt.datetime(2026, 11, 21, 21, tzinfo=dt.UTC).timestamp()


def test_code_built_scenarios_are_checked_by_the_same_schema() -> None:
    assert check(Scenario()) == [] and Scenario().checked() == Scenario()
    problems = check(replace(Scenario(), max_power=float("nan"), offers_v2g="no"))  # type: ignore[arg-type]
    assert problems == ["offers_v2g: must be true or false, got 'no'", "max_power: must be a finite number, got nan"]


@pytest.mark.parametrize("depth", [20, 5000])
def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("steps = " + "[" * depth + "]" * depth + "\n")
    with pytest.raises(ScenarioError, match="nested"):
        load(path)


def test_a_key_with_a_line_break_still_gives_one_line(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('"bad\\nkey" = 1\n')
    with pytest.raises(ScenarioError) as refused:
        load(path)
    assert "\n" not in str(refused.value) and "bad key: unknown key" in str(refused.value)


def test_the_readme_examples_pass_their_schema(tmp_path: Path) -> None:
    """The TOML examples of the README: a charger file (it has [ratings]) or a scenario file."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    examples = re.findall(r"```toml\n(.*?)```", readme, re.S)
    assert examples
    for n, text in enumerate(examples):
        path = tmp_path / f"example{n}.toml"
        path.write_text(text)
        load_charger_config(path) if "[ratings]" in text else load(path)


def test_a_big_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_text("# " + "x" * (MAX_FILE_BYTES) + "\n")
    with pytest.raises(ScenarioError, match=f"more than {MAX_FILE_BYTES} bytes"):
        load(path)


def test_a_plan_has_a_bounded_number_of_steps(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text("steps = [" + ", ".join(f"[{i}, 1]" for i in range(MAX_PLAN_STEPS + 1)) + "]\n")
    with pytest.raises(ScenarioError, match=f"steps: must have at most {MAX_PLAN_STEPS} items"):
        load(path)
    path.write_text("steps = [" + ", ".join(f"[{i}, 1]" for i in range(MAX_PLAN_STEPS)) + "]\n")
    assert len(load(path).steps) == MAX_PLAN_STEPS


def test_an_error_names_a_few_keys_and_counts_the_rest() -> None:
    error = ConfigError([Problem(f"k{i}", "bad") for i in range(MAX_PROBLEMS_SHOWN + 5)], "f.toml")
    assert str(error).count(": bad") == MAX_PROBLEMS_SHOWN and str(error).endswith("and 5 more")
