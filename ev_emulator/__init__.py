"""The truck emulator (EVCC side): `Truck` assembles the battery/BMS model, the charging needs and the EVCC
controller from a `TruckConfig`.

`battery`: the pack and BMS model (OCV, resistance, current limits, contactors), a `VehicleTerminal` for a
simulated charger's plant. `needs`: departure, SoC goals, V2G reserve and the ISO 15118-20 energy requests.
`inlet`: where the truck meets the charger's physics (a shared plant, or the charger's reports).
"""

from .config import TruckConfig, TruckConfigError, load_truck_config
from .truck import Truck

__all__ = ["Truck", "TruckConfig", "TruckConfigError", "load_truck_config"]
