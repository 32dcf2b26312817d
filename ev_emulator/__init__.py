"""The truck emulator (EVCC side).

`battery`: the pack and BMS model (OCV, resistance, current limits, contactors), a `VehicleTerminal` for the
charger's mock plant. `needs`: departure, SoC goals, V2G reserve and the ISO 15118-20 energy requests.
"""
