"""Plug & Charge in the sim: a PKI made for the run, valid in the scenario's (virtual) time, whose contract the truck
signs with (or installs first) and whose MO root and CPS the charger trusts and uses."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from ev_emulator import Truck
from ev_emulator.pnc import load_truck_contract, truck_pnc
from evse_emulator import Charger
from evse_emulator.pnc import charger_pnc
from stack.clock import Clock
from stack.messages import iso20_common as cm
from stack.security.pki import generate_pki

from .scenario import Scenario

BEFORE_START = dt.timedelta(days=1)  # the run's certificates are valid from a day before the scenario starts
VALIDITY_DAYS = 30  # and for a month: longer than any stay (a week at most)
METERING_CONFIRMATION_WH = 5_000.0  # the charger asks for a signed meter reading 5 kWh before the truck's target


@contextmanager
def plug_and_charge(s: Scenario, charger: Charger, truck: Truck, clock: Clock) -> Iterator[None]:
    """With `s.auth == "pnc"`: both sides set up for PnC for the duration of the block (the PKI is removed after)."""
    if s.auth != "pnc":
        yield
        return
    with tempfile.TemporaryDirectory(prefix="mcs-v2g-pnc-") as folder:
        valid_from = dt.datetime.fromtimestamp(s.start, dt.UTC) - BEFORE_START
        paths = generate_pki(folder, validity_days=VALIDITY_DAYS, valid_from=valid_from)
        pnc, _ = charger_pnc(paths, clock)
        charger.secc_config = replace(charger.secc_config, authorizations=(cm.Authorization.PnC,), pnc=pnc)
        # the charger asks for a signed meter reading near the end; the truck asks for MeterInfo to have one to sign
        charger.config = replace(charger.config, metering_confirmation_wh=METERING_CONFIRMATION_WH)
        contract = None if s.install_contract else load_truck_contract(paths.directory)
        pnc_ev = truck_pnc(paths, contract=contract)
        truck.evcc_config = replace(truck.evcc_config, pnc=pnc_ev, request_meter_info=True)
        yield
