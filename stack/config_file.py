"""Config files checked at the door: a TOML file against the schema of a config dataclass.

The schema of a config is its stdlib dataclass: field types with `Annotated` constraints (`annotated_types`:
`Ge`, `Interval`, `MinLen`, ...) and, for checks across fields, a `cross_check()` method returning `Problem`s.
`validate` builds a pydantic v2 model from those annotations (strict: no truthy strings, no booleans or strings
as numbers, no NaN or infinity; unknown keys refused) and returns the dataclass, or raises a `ConfigError` that
names the file and, for every bad value, its key path and the reason, on one line.

A `Layout` says where each field sits in the file (at the top level or in a `[section]`) and refuses unknown
sections, unknown keys and a key written two ways. A file of several configs (a depot: `[[charger]]` and
`[[truck]]` tables) validates each table with its own config class, passing `keys` with the table's prefix
(`truck[2].`) so every message names the element.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import tomllib
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model

T = TypeVar("T")

STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
MAX_DEPTH = 16  # nesting of arrays and tables: no setting comes near it
# a config file is a few KB; 64 KiB holds a plan of thousands of steps and bounds the time to read it
MAX_FILE_BYTES = 64 * 1024
MAX_PROBLEMS_SHOWN = 8  # an error names this many bad keys, then counts the rest


@dataclass(frozen=True, slots=True)
class Problem:
    """One bad value: its key path in the file (`ratings.max_power`, `steps[1][0]`; "" for the file) and why."""

    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.key}: {self.reason}" if self.key else self.reason


class ConfigError(ValueError):
    """A config file or setting that cannot be used: the file, and each bad key with its reason (one line)."""

    def __init__(self, problems: str | Sequence[Problem], path: Path | str | None = None) -> None:
        self.problems = [Problem("", problems)] if isinstance(problems, str) else list(problems)
        self.path = path
        shown = [str(p) for p in self.problems[:MAX_PROBLEMS_SHOWN]]
        if len(self.problems) > MAX_PROBLEMS_SHOWN:
            shown.append(f"and {len(self.problems) - MAX_PROBLEMS_SHOWN} more")
        text = "; ".join(shown)
        super().__init__(" ".join((f"{path}: {text}" if path is not None else text).split()))

    def renamed(self, keys: Mapping[str, str]) -> list[Problem]:
        """Its problems with the field names replaced by their key paths in a file."""
        return [Problem(_rename(p.key, keys), p.reason) for p in self.problems]


def _rename(key: str, keys: Mapping[str, str]) -> str:
    """`steps[1][0]` -> `plan.steps[1][0]` when `keys` maps the field `steps` to `plan.steps`."""
    name = re.split(r"[.\[]", key, maxsplit=1)[0]
    return keys.get(name, name) + key[len(name) :]


# --------------------------------------------------------------------------------------------- constraints


def one_of(names: Iterable[str]) -> AfterValidator:
    """A value that must be one of `names` (a registry's keys: the list stays in one place)."""
    allowed = tuple(names)

    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value

    return AfterValidator(check)


def _distinct(values: tuple[Any, ...]) -> tuple[Any, ...]:
    if len(set(values)) != len(values):
        raise ValueError("must not name an entry twice")
    return values


DISTINCT = AfterValidator(_distinct)

# The latest date a TOML file or a clock of this program is expected to hold: 9999-12-31 (datetime's limit).
MAX_EPOCH_S = dt.datetime(9999, 12, 31, tzinfo=dt.UTC).timestamp()


def _epoch(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.timestamp()
    if isinstance(value, dt.date | dt.time | str):
        raise ValueError("must be seconds since 1970 (UTC) or a date-time with an offset (2026-11-21T18:00:00Z)")
    return value


EPOCH = BeforeValidator(_epoch)  # an instant: seconds since 1970 (UTC) or a TOML date-time with an offset

# --------------------------------------------------------------------------------------------------- files


def read_toml(path: Path) -> dict[str, Any]:
    """The tables of a TOML file, or a `ConfigError` naming the file (missing, unreadable, not TOML)."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise ConfigError(f"a config file of more than {MAX_FILE_BYTES} bytes: too big to be one", path)
        return tomllib.loads(data.decode("utf-8-sig"))  # a byte-order mark (some Windows editors write one) is skipped
    except FileNotFoundError:
        raise ConfigError("no such file", path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read it: {exc.strerror or exc}", path) from None
    except UnicodeDecodeError:
        raise ConfigError("not a TOML file: not UTF-8 text", path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not a TOML file: {exc}", path) from None
    except RecursionError:
        raise ConfigError("not a config file: arrays or tables nested too deeply", path) from None


@dataclass(frozen=True)
class Layout:
    """Where each field of a config sits in its file.

    `sections` maps a `[section]` to the fields written in it; `top` lists the fields written at the top level.
    A field may be in both (a scenario file written flat or in tables) but set only once. `tables` are sections
    whose keys the caller checks (a driver's settings).
    """

    top: frozenset[str]
    sections: Mapping[str, frozenset[str]] = dataclasses.field(default_factory=dict)
    tables: frozenset[str] = frozenset()  # sections handed over whole, as a dict under their own name

    def read(self, path: Path, error: type[ConfigError] = ConfigError) -> tuple[dict[str, Any], dict[str, str]]:
        """The file's values by field name and their key paths (`flatten` of `read_toml`); a problem of the file
        or its layout raises `error` naming the file."""
        try:
            return self.flatten(read_toml(path))
        except ConfigError as exc:
            raise error(exc.problems, path) from None

    def flatten(self, data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """The fields' values and each field's key path, or a `ConfigError` naming every misplaced key."""
        values: dict[str, Any] = {}
        keys: dict[str, str] = {}
        problems: list[Problem] = []

        def put(name: str, value: Any, key: str) -> None:
            if name in keys:
                problems.append(Problem(key, f"set twice: also as {keys[name]}"))
            values[name], keys[name] = value, key

        for key, value in data.items():
            if key in self.tables:
                if isinstance(value, dict):
                    put(key, dict(value), key)
                else:
                    problems.append(Problem(key, f"must be a table [{key}]"))
            elif key in self.sections:
                if not isinstance(value, dict):
                    problems.append(Problem(key, f"must be a table [{key}]"))
                    continue
                for name, item in value.items():
                    if name in self.sections[key]:
                        put(name, item, f"{key}.{name}")
                    else:
                        problems.append(Problem(f"{key}.{name}", self._unknown(name, self.sections[key])))
            elif key in self.top:
                put(key, value, key)
            elif isinstance(value, dict):
                problems.append(
                    Problem(f"[{key}]", f"unknown section; known: {_names([*self.sections, *self.tables])}")
                )
            else:
                problems.append(Problem(key, self._unknown(key, self.top)))
        if problems:
            raise ConfigError(problems)
        return values, keys

    def _unknown(self, name: str, here: Iterable[str]) -> str:
        home = [s for s, names in self.sections.items() if name in names]
        if home:
            return f"belongs in [{home[0]}]"
        return f"unknown key; known here: {_names(here)}"


def _names(names: Iterable[str]) -> str:
    return ", ".join(sorted(names)) or "none"


# ------------------------------------------------------------------------------------------------ validate


_SCHEMAS: dict[type[Any], type[BaseModel]] = {}


def _schema(cls: type[Any]) -> type[BaseModel]:
    """A strict pydantic model of the dataclass `cls`: its fields, their annotations, their defaults (cached)."""
    if cls in _SCHEMAS:
        return _SCHEMAS[cls]
    hints = typing.get_type_hints(cls, include_extras=True)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = Field(default=f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = Field(default_factory=f.default_factory)
        else:
            default = Field()
        fields[f.name] = (hints[f.name], default)
    model: type[BaseModel] = create_model(cls.__name__, __config__=STRICT, **fields)
    _SCHEMAS[cls] = model
    return model


def _tuples(value: Any, depth: int = 0) -> Any:
    """TOML arrays as tuples (the configs are immutable; strict validation takes a tuple for a tuple)."""
    if depth > MAX_DEPTH:
        raise ConfigError(f"arrays or tables nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, list | tuple):
        return tuple(_tuples(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v, depth + 1) for k, v in value.items()}
    return value


def _lists(value: Any) -> Any:
    return [_lists(v) for v in value] if isinstance(value, tuple) else value


_REASONS = {
    "float_type": "must be a number",
    "int_type": "must be a whole number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "tuple_type": "must be an array",
    "dict_type": "must be a table",
    "finite_number": "must be a finite number",
    "extra_forbidden": "unknown key",
    "missing": "missing",
}


def _problem(error: Mapping[str, Any], keys: Mapping[str, str]) -> Problem:
    loc = error["loc"]
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).removeprefix(".")
    key = _rename(key, keys)
    kind = error["type"]
    if kind in _REASONS:
        reason = _REASONS[kind]
    else:
        reason = re.sub(r"^\w+ should", "must", str(error["msg"]).removeprefix("Value error, "))
        reason = reason.replace(" after validation", "")
    if kind not in ("extra_forbidden", "missing"):
        reason += f", got {_shown(error.get('input'))}"
    return Problem(key, reason)


def _shown(value: Any) -> str:
    """A value as the TOML file wrote it (arrays in brackets, true/false)."""
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    text = "true" if value is True else "false" if value is False else repr(_lists(value))
    return text if len(text) <= 40 else text[:37] + "..."


def validate(
    cls: type[T],
    values: Mapping[str, Any],
    *,
    keys: Mapping[str, str] | None = None,
    path: Path | str | None = None,
    error: type[ConfigError] = ConfigError,
) -> T:
    """An instance of the config dataclass `cls` from `values`, with its `cross_check()` passed.

    `keys` maps a field to its key path in the file (for the messages); `error` is the class raised.
    """
    keys = keys or {}
    try:
        model = _schema(cls).model_validate(_tuples(dict(values)))
    except ConfigError as exc:
        raise error(exc.problems, path) from None
    except ValidationError as exc:
        raise error([_problem(e, keys) for e in _causes(exc.errors())], path) from None
    try:  # a dataclass may check more in __post_init__ and raise a ConfigError keyed by its fields
        config = cls(**{f.name: getattr(model, f.name) for f in dataclasses.fields(cls)})  # type: ignore[arg-type]
    except ConfigError as exc:
        raise error(exc.renamed(keys), path) from None
    cross_check: Callable[[], list[Problem]] | None = getattr(config, "cross_check", None)
    problems = cross_check() if cross_check is not None else []
    if problems:
        raise error(ConfigError(problems).renamed(keys), path)
    return config


def _causes(errors: list[Any]) -> list[Any]:
    """The errors without a list's length error that only follows from an item's own (a series with one bad item
    counts as too short: the item says what is wrong)."""
    locs = [tuple(e["loc"]) for e in errors]

    def follows(e: Any) -> bool:
        loc = tuple(e["loc"])
        return e["type"] == "too_short" and any(len(o) > len(loc) and o[: len(loc)] == loc for o in locs)

    return [e for e in errors if not follows(e)]


def values_of(config: Any) -> dict[str, Any]:
    """The fields of a config dataclass as they are (no copy of nested values, unlike `dataclasses.asdict`)."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
