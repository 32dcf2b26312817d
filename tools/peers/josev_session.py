"""Josev's SECC and EVCC as processes inside a network namespace, for session interop tests.

Josev (PyPI `iso15118==0.31.2`) runs from its own venv (`tools.peers.josev.ensure_josev`). Each process gets a
working directory of its own under a temporary directory: its `.env` (Josev reads it from the working
directory), a small launcher module that replaces Josev's `secc/main.py` or `evcc/main.py` (same code, with a
simulator subclass, see below), the EVCC's JSON config, and its log (`josev.log`, stdout and stderr).

With `MESSAGE_LOG_JSON` (on by default) Josev logs every message it encodes ("Message to encode ...") and
decodes ("Decoded message ...") as wire JSON on one line; `parse_messages` turns a log into the message
sequence, which is how a test judges Josev's side of a session.

Launchers (Josev's own `main` modules plus a subclass of its simulated controller):
- EVCC: `SimEVController.select_energy_service_v20` always takes the first parameter set of the first offered
  service. The subclass takes the wanted service (DC_BPT) and the first parameter set whose ControlMode is
  the wanted one ($MCSV2G_JOSEV_SERVICE, $MCSV2G_JOSEV_CONTROL); if there is none it falls back to Josev's
  choice and logs so (the test then sees the wrong service or control mode).
- SECC (`physical=True`): Josev's `SimEVSEController` reports a constant EVSEPresentVoltage of 1 V (one of its
  unphysical simulated values, PEERS.md). An EV that waits in DC_PreCharge until the EVSE voltage matches its
  target (as ours does, `PreChargeStep.matched`) therefore never leaves PreCharge and ends on
  V2G_EVCC_PreCharge_Timeout; Josev's own EV does not check. The subclass models an ideal power supply: the
  output follows the target voltage Josev passes to `send_charging_command` (PreCharge, Scheduled charge
  loop) and drops to 0 V on `stop_charger` (PowerDelivery Stop, so WeldingDetection sees no voltage). This
  only changes simulated hardware values, not a single protocol decision of Josev's. `physical=False` runs
  Josev's stock simulator.
- Both: Josev's pydantic models are stricter than the -20 XSDs in four places (`_RELAX` lists them); a
  schema-valid message that omits one of those optional elements is dropped with V2GMessageValidationError,
  without any response, and the session ends. The launchers relax exactly those to the XSD at start-up
  (logged as "mcs-v2g launcher: ..."); $MCSV2G_JOSEV_STRICT=1 keeps Josev as shipped.

- EVCC, Plug & Charge: Josev's -20 EVCC sends CertificateInstallationReq with the V2GTP payload type 0x8001 (the
  -2 one; -20 common messages are 0x8002), which a -20 SECC rejects. With `mend_payload_type` the launcher sends
  it as 0x8002, to see what comes after (Josev cannot handle any CertificateInstallationRes: NotImplementedError).

Lifetimes: the SECC serves session after session until stopped; the EVCC runs one session and exits about 5 s
after SessionStopRes, but after a failed session it stays alive (SDP retries exhausted), so always `stop()` it.
`write_josev_pki` lays out our test PKI's TLS files (with `pnc=True` its Plug & Charge files too) under the names
Josev reads from $PKI_PATH.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tools.netns import Side, VethPair
from tools.peers.josev import PeerUnavailable, ensure_josev

__all__ = [
    "JosevProcess",
    "LogMessage",
    "PeerUnavailable",
    "end_reasons",
    "log_errors",
    "parse_messages",
    "start_josev_evcc",
    "start_josev_secc",
    "write_josev_pki",
]

SECC_READY = "UDP server started"
Control = Literal["scheduled", "dynamic"]

# Environment variables Josev reads; the inherited environment must not leak any of them into a test run.
_JOSEV_ENV = (
    "NETWORK_INTERFACE",
    "LOG_LEVEL",
    "PROTOCOLS",
    "AUTH_MODES",
    "ENABLE_TLS_1_3",
    "SECC_ENFORCE_TLS",
    "FREE_CHARGING_SERVICE",
    "FREE_CERT_INSTALL_SERVICE",
    "ALLOW_CERT_INSTALL_SERVICE",
    "USE_CPO_BACKEND",
    "STANDBY_ALLOWED",
    "PKI_PATH",
    "MESSAGE_LOG_JSON",
    "MESSAGE_LOG_EXI",
    "EVCC_CONFIG_PATH",
    "MCSV2G_JOSEV_SERVICE",
    "MCSV2G_JOSEV_CONTROL",
    "MCSV2G_JOSEV_PHYSICAL",
    "MCSV2G_JOSEV_STRICT",
    "MCSV2G_JOSEV_MEND_PAYLOAD",
)

# Fields Josev's pydantic models require although the -20 XSDs make them optional (minOccurs="0"): Josev
# rejects a schema-valid message that omits them (V2GMessageValidationError, session terminated). Relaxed
# here to what the XSD says unless MCSV2G_JOSEV_STRICT=1. Module, class, field name.
_RELAX = """
JOSEV_STRICTER_THAN_XSD = (
    ("common_messages", "ScheduledEVPowerProfile", "power_tolerance_acceptance"),  # Scheduled_EVPPTControlMode
    ("common_types", "DisplayParameters", "charging_complete"),  # ChargingComplete
)
# Josev root validators that demand what the XSD leaves optional. PowerDeliveryReq: EVPowerProfile whenever
# EVProcessing is Finished and ChargeProgress is not Stop, in Dynamic mode too (XSD: minOccurs="0"; EVerest's
# -20 EV omits it in Dynamic).
JOSEV_STRICTER_VALIDATORS = (
    ("common_messages", "PowerDeliveryReq", "set_ev_power_profile_if_processing_finished_and_start_charging"),
    # Charging/DischargingSchedule: the price schedule choice is minOccurs="0" (with Pricing 0 there is none)
    ("common_messages", "ChargingSchedule", "either_price_levels_or_absolute_prices"),
    ("common_messages", "DischargingSchedule", "either_price_levels_or_absolute_prices"),
)


def relax_models():
    import importlib

    if os.environ.get("MCSV2G_JOSEV_STRICT", "0") == "1":
        return
    for module, cls, name in JOSEV_STRICTER_THAN_XSD:
        model = getattr(importlib.import_module("iso15118.shared.messages.iso15118_20." + module), cls)
        field = model.__fields__[name]
        field.required = False
        field.default = None
        logger.info("mcs-v2g launcher: %s.%s made optional as in the XSD", cls, field.alias)
    for module, cls, name in JOSEV_STRICTER_VALIDATORS:
        model = getattr(importlib.import_module("iso15118.shared.messages.iso15118_20." + module), cls)
        kept = [v for v in model.__pre_root_validators__ if v.__name__ != name]
        assert len(kept) < len(model.__pre_root_validators__), name
        model.__pre_root_validators__ = kept
        logger.info("mcs-v2g launcher: %s validator %s dropped", cls, name)


"""

SECC_LAUNCHER = '''\
"""Josev's iso15118.secc.main, with a simulated power supply whose output voltage follows its set point."""

import asyncio
import logging
import os

from iso15118.secc import SECCHandler
from iso15118.secc.controller.interface import ServiceStatus
from iso15118.secc.controller.simulator import SimEVSEController
from iso15118.secc.secc_settings import Config
from iso15118.shared.exificient_exi_codec import ExificientEXICodec

logger = logging.getLogger("mcsv2g.josev_secc")
{RELAX}

class PhysicalSimEVSEController(SimEVSEController):
    """EVSEPresentVoltage/Current follow the targets instead of Josev's constant 1 V / 1 A."""

    async def send_charging_command(
        self, ev_target_voltage, ev_target_current, is_precharge=False, is_session_bpt=False
    ):
        if ev_target_voltage is not None:
            self.evse_data_context.present_voltage = ev_target_voltage
        if ev_target_current is not None:
            self.evse_data_context.present_current = ev_target_current

    async def stop_charger(self):
        self.evse_data_context.present_voltage = 0
        self.evse_data_context.present_current = 0


async def main():
    config = Config()
    config.load_envs()
    config.print_settings()
    relax_models()
    physical = os.environ.get("MCSV2G_JOSEV_PHYSICAL", "1") == "1"
    controller = PhysicalSimEVSEController() if physical else SimEVSEController()
    logger.info("mcs-v2g launcher: %s", type(controller).__name__)
    await controller.set_status(ServiceStatus.STARTING)
    await SECCHandler(exi_codec=ExificientEXICodec(), evse_controller=controller, config=config).start(config.iface)


try:
    asyncio.run(main())
except KeyboardInterrupt:
    pass
'''.replace("{RELAX}", _RELAX)

EVCC_LAUNCHER = '''\
"""Josev's iso15118.evcc.main, with an EV that picks a given energy service and control mode."""

import asyncio
import logging
import os
import sys

from iso15118.evcc import Config, EVCCHandler
from iso15118.evcc.controller.simulator import SimEVController
from iso15118.evcc.evcc_config import load_from_file
from iso15118.shared.exificient_exi_codec import ExificientEXICodec
from iso15118.shared.messages.enums import ControlMode, ParameterName, ServiceV20
from iso15118.shared.messages.iso15118_20.common_messages import SelectedEnergyService

logger = logging.getLogger("mcsv2g.josev_evcc")
{RELAX}SERVICE = ServiceV20[os.environ.get("MCSV2G_JOSEV_SERVICE", "DC_BPT")]
CONTROL = ControlMode[os.environ.get("MCSV2G_JOSEV_CONTROL", "SCHEDULED").upper()]


def control_mode(parameter_set):
    for parameter in parameter_set.parameters:
        if parameter.name == ParameterName.CONTROL_MODE:
            return parameter.int_value
    return None


class ChoosingSimEVController(SimEVController):
    async def select_energy_service_v20(self, services):
        for matched in services:
            if not matched.is_energy_service or matched.service != SERVICE:
                continue
            for parameter_set in matched.parameter_sets:
                if control_mode(parameter_set) == CONTROL:
                    logger.info(
                        "mcs-v2g launcher: selected service %s, parameter set %d, control mode %s",
                        SERVICE.name, parameter_set.id, CONTROL.name,
                    )
                    return SelectedEnergyService(
                        service=matched.service, is_free=matched.is_free, parameter_set=parameter_set
                    )
        logger.warning("mcs-v2g launcher: %s with %s not offered, Josev's own choice", SERVICE.name, CONTROL.name)
        return await super().select_energy_service_v20(services)


def mend_installation_payload_type():
    """Josev's -20 AuthorizationSetup sends CertificateInstallationReq without a payload type, so it goes out as
    0x8001 (create_next_message's -2 default); with $MCSV2G_JOSEV_MEND_PAYLOAD=1 it gets 0x8002 (MainStream)."""
    from iso15118.evcc.states import iso15118_20_states as states
    from iso15118.shared.messages.enums import ISOV20PayloadTypes

    if os.environ.get("MCSV2G_JOSEV_MEND_PAYLOAD", "0") != "1":
        return
    original = states.AuthorizationSetup.create_next_message

    def create_next_message(self, next_state, next_msg, *args, **kwargs):
        if next_state is states.CertificateInstallation and len(args) == 2:
            kwargs.setdefault("next_msg_payload_type", ISOV20PayloadTypes.MAINSTREAM)
        return original(self, next_state, next_msg, *args, **kwargs)

    states.AuthorizationSetup.create_next_message = create_next_message
    logger.info("mcs-v2g launcher: CertificateInstallationReq sent with payload type 0x8002")


async def main():
    config = Config()
    config.load_envs()
    config.ev_config_file_path = sys.argv[1]
    relax_models()
    mend_installation_payload_type()
    evcc_config = await load_from_file(config.ev_config_file_path)
    await EVCCHandler(
        evcc_config=evcc_config,
        iface=config.iface,
        exi_codec=ExificientEXICodec(),
        ev_controller=ChoosingSimEVController(evcc_config),
    ).start()


try:
    asyncio.run(main())
except KeyboardInterrupt:
    pass
'''.replace("{RELAX}", _RELAX)

# "INFO    2026-11-22 00:17:16,189 - iso15118.shared.exi_codec (302): Decoded message (ns=Namespace.SAP): {...}"
_LINE = re.compile(r"^(?P<level>[A-Z]+)\s+(?P<time>\S+ \S+) - (?P<logger>\S+) \((?P<lineno>\d+)\): (?P<text>.*)$")
_MESSAGE = re.compile(r"^(?P<what>Message to encode|Decoded message) \(ns=(?P<ns>[^)]*)\): (?P<json>\{.*\})\s*$")


@dataclass(frozen=True)
class LogMessage:
    """One message in a Josev log: `sent` (it encoded it) or received (it decoded it)."""

    sent: bool
    name: str
    body: dict[str, Any]
    namespace: str
    time: str

    @property
    def response_code(self) -> str | None:
        code = self.body.get("ResponseCode")
        return code if isinstance(code, str) else None


def parse_messages(log_text: str) -> list[LogMessage]:
    """Every message Josev encoded or decoded, in log order (needs MESSAGE_LOG_JSON, Josev's default).

    Only requests and responses: with PnC Josev also logs the elements it EXI-encodes to sign or check a signature
    (PnC_AReqAuthorizationMode, OEMProvisioningCertificateChain, SignedInfo) as "Message to encode"."""
    messages = []
    for line in log_text.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        found = _MESSAGE.match(match["text"])
        if found is None:
            continue
        try:
            document = json.loads(found["json"])
        except json.JSONDecodeError:
            continue
        if not isinstance(document, dict) or len(document) != 1:
            continue
        ((name, body),) = document.items()
        if not name.endswith(("Req", "Res")):
            continue
        sent = found["what"] == "Message to encode"
        messages.append(LogMessage(sent, name, body if isinstance(body, dict) else {}, found["ns"], match["time"]))
    return messages


def end_reasons(log_text: str) -> list[str]:
    """Why each session ended, from Josev's "Reason: ..." lines ("Communication session terminated" when the
    EV asked for it with SessionStopReq; a validation error, timeout or "TCP peer closed connection" else)."""
    reasons = []
    for line in log_text.splitlines():
        match = _LINE.match(line)
        if match is not None and match["text"].startswith("Reason: "):
            reasons.append(match["text"][len("Reason: ") :].strip())
    return reasons


def log_errors(log_text: str) -> list[str]:
    """The ERROR and CRITICAL lines of a Josev log, and Python tracebacks' last lines."""
    lines = log_text.splitlines()
    found = [line for line in lines if line.startswith(("ERROR", "CRITICAL"))]
    found += [lines[i + 1] for i, line in enumerate(lines[:-1]) if line.startswith("Traceback")]
    return found


@dataclass
class JosevProcess:
    """A running Josev SECC or EVCC; `stop()` ends it (SIGINT, then SIGKILL to its process group)."""

    role: Literal["secc", "evcc"]
    process: subprocess.Popen[bytes]
    workdir: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def log_path(self) -> Path:
        return self.workdir / "josev.log"

    def log(self, since: int = 0) -> str:
        """Its log (from character `since`, a `mark()` taken earlier)."""
        try:
            return self.log_path.read_text(errors="replace")[since:]
        except FileNotFoundError:
            return ""

    def mark(self) -> int:
        """The log's current length, to look only at what comes after it."""
        return len(self.log())

    def messages(self, since: int = 0) -> list[LogMessage]:
        return parse_messages(self.log(since))

    def end_reasons(self, since: int = 0) -> list[str]:
        return end_reasons(self.log(since))

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def wait_for_log(self, text: str, timeout: float, *, start: int = 0) -> bool:
        """True once `text` is in the log after character `start`; False on timeout or if the process ended."""
        deadline = time.monotonic() + timeout
        while True:
            if text in self.log()[start:]:
                return True
            if self.process.poll() is not None:
                return text in self.log()[start:]
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def wait_for_message(
        self, name: str, timeout: float, *, sent: bool | None = None, since: int = 0
    ) -> LogMessage | None:
        """The first logged message called `name` (sent, received or either), waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.messages(since):
                if message.name == name and (sent is None or message.sent is sent):
                    return message
            if self.process.poll() is not None or time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def wait(self, timeout: float) -> int | None:
        """Its exit code, or None if it still runs after `timeout`."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 10.0) -> int:
        """End it: SIGINT (Josev's `KeyboardInterrupt` path), SIGKILL to its process group after `timeout`."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)
            if self.wait(timeout) is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        # its JVM (py4j, die_on_exit) leaves with it; make sure nothing of the group survives
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.returncode

    def __enter__(self) -> JosevProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# Our test PKI's files (stack.security.pki.PkiPaths) under the names Josev reads from $PKI_PATH/iso15118_2/ (even
# for -20): certificates in certs/, keys and their password files in private_keys/.
JOSEV_PKI_FILES = {
    "certs/v2gRootCACert.pem": "v2g_root_ca.pem",  # the EVCC verifies the SECC chain against it
    "certs/cpoCertChain.pem": "secc_chain.pem",  # the SECC's TLS chain, leaf first
    "private_keys/seccLeaf.key": "secc_leaf.key",
    "certs/oemRootCACert.pem": "oem_root_ca.pem",  # TLS 1.3: the SECC verifies the EV chain against it
    "certs/oemCertChain.pem": "vehicle_chain.pem",  # TLS 1.3: the EV's chain
    "private_keys/oemLeaf.key": "vehicle_leaf.key",
}
# Plug & Charge: what Josev's -20 EVCC reads besides (evcc/states/iso15118_20_states.py AuthorizationSetup through
# shared/security.py CertPath/KeyPath), certificates DER, keys PEM. The contract chain and key sign AuthorizationReq;
# the V2G root's issuer and serial, the OEM chain and key make CertificateInstallationReq. Josev has a single OEM
# leaf, its TLS client certificate as well as the signer of CertificateInstallationReq (as in its create_certs.sh),
# so with PnC its TLS files are our OEM provisioning chain and key, not the vehicle ones. Its -20 SECC reads no file
# for PnC: it checks the signature with the contract leaf the EV sends and no chain (secc Authorization).
JOSEV_PNC_FILES = {
    "certs/contractLeafCert.der": "contract_leaf.pem",
    "certs/moSubCA2Cert.der": "mo_sub_ca2.pem",
    "certs/moSubCA1Cert.der": "mo_sub_ca1.pem",
    "private_keys/contractLeaf.key": "contract_leaf.key",
    "certs/v2gRootCACert.der": "v2g_root_ca.pem",
    "certs/oemLeafCert.der": "oem_prov_leaf.pem",
    "certs/oemSubCA2Cert.der": "oem_sub_ca2.pem",
    "certs/oemSubCA1Cert.der": "oem_sub_ca1.pem",
    "certs/oemCertChain.pem": "oem_prov_chain.pem",
    "private_keys/oemLeaf.key": "oem_prov_leaf.key",
}


def write_josev_pki(pki_dir: Path, target: Path, password: str | None = None, *, pnc: bool = False) -> Path:
    """A Josev PKI_PATH holding the TLS files of our test PKI in `pki_dir` (with `pnc` its Plug & Charge files
    too, `JOSEV_PNC_FILES`); returns `target`.

    Josev reads a key's password from `<key>Password.txt` (seccLeafPassword.txt, oemLeafPassword.txt,
    contractLeafPassword.txt); an empty file means an unencrypted key.
    """
    base = target / "iso15118_2"
    files = {**JOSEV_PKI_FILES, **(JOSEV_PNC_FILES if pnc else {})}
    for josev_name, ours in files.items():
        path = base / josev_name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = (pki_dir / ours).read_bytes()
        if josev_name.endswith(".der"):
            data = x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
        path.write_bytes(data)
    for name in ("seccLeafPassword.txt", "oemLeafPassword.txt", "contractLeafPassword.txt"):
        (base / "private_keys" / name).write_text((password or "") + "\n")
    return target


def _write_env(workdir: Path, values: dict[str, str]) -> dict[str, str]:
    """Write `.env` and return the environment for the process (the same values, inherited ones removed)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / ".env").write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    env = {key: value for key, value in os.environ.items() if key not in _JOSEV_ENV and not key.startswith("PYTHON")}
    env.update(values)
    return env


def _start(
    pair: VethPair, side: Side, role: Literal["secc", "evcc"], workdir: Path, argv: list[str], env: dict[str, str]
) -> JosevProcess:
    python = ensure_josev(progress=lambda message: None) / "bin" / "python"
    with open(workdir / "josev.log", "wb") as log:
        process = pair.popen(
            side,
            [str(python), "-u", *argv],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() reaches its JVM too
        )
    return JosevProcess(role, process, workdir)


def start_josev_secc(
    pair: VethPair,
    side: Side,
    workdir: Path,
    *,
    tls: bool = False,
    enable_tls_1_3: bool = False,
    auth_modes: str = "EIM",
    physical: bool = True,
    ready_timeout: float = 60.0,
    extra_env: dict[str, str] | None = None,
) -> JosevProcess:
    """Josev's SECC (-20 DC) on the veth end of namespace `side`, once its SDP server is up.

    `tls` sets SECC_ENFORCE_TLS (it then answers SDP with TLS only). `auth_modes` is its AUTH_MODES ("EIM",
    "PNC" or "EIM,PNC"; with PNC it sends the PnC branch of AuthorizationSetupRes). AuthorizationSetupRes offers
    CertificateInstallation (ALLOW_CERT_INSTALL_SERVICE, true by default) although its -20 SECC cannot install.
    Raises PeerUnavailable if the venv cannot be made, RuntimeError (with the log's tail) if it does not get ready
    within `ready_timeout`.
    """
    values = {
        "NETWORK_INTERFACE": pair.interfaces[side],
        "PROTOCOLS": "ISO_15118_20_DC",
        "AUTH_MODES": auth_modes,
        "LOG_LEVEL": "INFO",
        "MESSAGE_LOG_JSON": "true",
        "ENABLE_TLS_1_3": str(enable_tls_1_3).lower(),
        "SECC_ENFORCE_TLS": str(tls).lower(),
        "MCSV2G_JOSEV_PHYSICAL": "1" if physical else "0",
        **(extra_env or {}),
    }
    env = _write_env(workdir, values)
    (workdir / "josev_secc.py").write_text(SECC_LAUNCHER)
    secc = _start(pair, side, "secc", workdir, [str(workdir / "josev_secc.py")], env)
    if not secc.wait_for_log(SECC_READY, ready_timeout):
        code = secc.stop()
        raise RuntimeError(f"Josev SECC not ready after {ready_timeout} s (exit {code}):\n{secc.tail()}")
    return secc


def start_josev_evcc(
    pair: VethPair,
    side: Side,
    workdir: Path,
    *,
    control: Control,
    service: str = "DC_BPT",
    use_tls: bool = False,
    enforce_tls: bool = False,
    charge_loops: int = 10,
    enable_tls_1_3: bool = False,
    cert_install_needed: bool = False,
    mend_payload_type: bool = False,
    extra_env: dict[str, str] | None = None,
) -> JosevProcess:
    """Josev's EVCC (-20 DC only) on the veth end of namespace `side`; it starts SDP at once.

    It authorizes by PnC whenever the SECC offers PnC, with the contract files of `write_josev_pki(pnc=True)` under
    $PKI_PATH. `cert_install_needed` (isCertInstallNeeded) makes it send CertificateInstallationReq when the SECC
    offers installation; Josev sends that with the -2 payload type 0x8001, `mend_payload_type` makes the launcher
    send it as 0x8002 (MainStream) like Josev's other -20 requests. The JSON config path must be absolute: Josev
    logs a wrong one only at DEBUG level and then runs with its defaults (AC) and fails at SAP.
    """
    values = {
        "NETWORK_INTERFACE": pair.interfaces[side],
        "LOG_LEVEL": "INFO",
        "MESSAGE_LOG_JSON": "true",
        "ENABLE_TLS_1_3": str(enable_tls_1_3).lower(),
        "MCSV2G_JOSEV_SERVICE": service,
        "MCSV2G_JOSEV_CONTROL": control.upper(),
        "MCSV2G_JOSEV_MEND_PAYLOAD": "1" if mend_payload_type else "0",
        **(extra_env or {}),
    }
    env = _write_env(workdir, values)
    config = {
        "supportedProtocols": ["ISO_15118_20_DC"],
        "supportedEnergyServices": [service],
        "energyTransferMode": "DC_extended",
        "useTls": use_tls,
        "enforceTls": enforce_tls,
        "isCertInstallNeeded": cert_install_needed,
        "sdpRetryCycles": 1,
        "chargeLoopCycle": charge_loops,
    }
    config_path = (workdir / "evcc_config.json").resolve()
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    (workdir / "josev_evcc.py").write_text(EVCC_LAUNCHER)
    return _start(pair, side, "evcc", workdir, [str(workdir / "josev_evcc.py"), str(config_path)], env)
