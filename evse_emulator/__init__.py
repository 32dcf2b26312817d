"""The charger emulator (SECC side): `Charger` assembles the HAL (a mock plant or real power electronics), the
plant controller and the energy policy from a `ChargerConfig`."""

from .charger import Charger
from .config import ChargerConfig, ChargerConfigError, load_charger_config

__all__ = ["Charger", "ChargerConfig", "ChargerConfigError", "load_charger_config"]
