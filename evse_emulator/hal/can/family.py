"""A power-module family: its CAN database (our DBC file), its timing, its default module, its two codecs.

Each family module (`infypower.py`, ...) defines one `Family` and two sans-I/O codecs built on the family's
database: the controller's side (`DriverCodec`: what to send, what a received frame means) and the module's
side (`ModuleCodec`: how an emulated module answers). Frames are encoded and decoded through cantools, never
packed by hand; the DBC file cites the public source of every frame.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Protocol

import can
import cantools
from cantools.database.can import Database

from .model import EmulatedModule, ModuleCommand, ModuleRating, ModuleReport

CONTROLLER_ADDRESS = 0xF0  # the controller's source address of the Infy and Winline IDs (EVerest's default)


class DriverCodec(Protocol):
    """The controller's side of a family's protocol: frames to send, the meaning of frames received."""

    def discovery(self) -> list[can.Message]:
        """Frames that make the modules on the bus make themselves known (a group count query, a broadcast read)."""

    def poll(self, address: int, rating_known: bool) -> list[can.Message]:
        """The reads of one poll cycle for module `address` (its ratings too while they are unknown)."""

    def command(self, address: int, command: ModuleCommand, previous: ModuleCommand | None) -> list[can.Message]:
        """Frames that take module `address` from `previous` (None: unknown, send everything) to `command`."""

    def decode(self, message: can.Message) -> ModuleReport | None:
        """What a module's frame says; None for frames that are not a module's answer to this controller."""


class ModuleCodec(Protocol):
    """The module's side: how the emulated modules answer a controller's frame."""

    def answer(self, message: can.Message, modules: Sequence[EmulatedModule], now: float) -> list[can.Message]:
        """Apply `message` to the live modules it addresses (marking them heard at `now`) and return their
        replies; an out-of-range value is refused as the family refuses it; a lost module answers nothing."""


@dataclass(frozen=True, slots=True)
class Family:
    """A power-module family as the driver, the plant and the benchmark need it."""

    name: str  # what `--family` and `--hal can:<name>` take
    title: str
    dbc: str  # file name under `evse_emulator/hal/can/dbc/`
    bitrate: int  # bit/s
    poll_interval_s: float  # the driver reads every module this often
    drop_after_s: float  # the driver drops a module silent this long
    module_silence_off_s: float  # a module switches off when the controller is silent this long
    rating: ModuleRating  # the emulated module's rating (what its capability frame reports)
    driver: Callable[[Database], DriverCodec]
    module: Callable[[Database], ModuleCodec]
    sources: tuple[str, ...] = field(default=())

    def database(self) -> Database:
        return load_dbc(self.dbc)


@cache
def load_dbc(name: str) -> Database:
    """One of our DBC files, parsed once per process."""
    text = resources.files(__package__).joinpath("dbc", name).read_text(encoding="utf-8")
    db = cantools.database.load_string(text, database_format="dbc", strict=True)
    if not isinstance(db, Database):
        raise TypeError(f"{name} is not a CAN database")
    return db


# family name -> "module:attribute" holding its `Family`, imported on first use
_FAMILIES: dict[str, str] = {
    "infypower": "evse_emulator.hal.can.infypower:FAMILY",
    "infypower-beg": "evse_emulator.hal.can.infypower_beg:FAMILY",
    "winline": "evse_emulator.hal.can.winline:FAMILY",
}


def family_names() -> list[str]:
    return sorted(_FAMILIES)


def family(name: str) -> Family:
    """The family called `name`; a `LookupError` naming the known ones otherwise."""
    try:
        where = _FAMILIES[name]
    except KeyError:
        raise LookupError(f"unknown CAN module family {name!r}; known: {', '.join(family_names())}") from None
    module, _, attr = where.partition(":")
    found = getattr(importlib.import_module(module), attr)
    if not isinstance(found, Family):
        raise TypeError(f"{where} is not a Family")
    return found
