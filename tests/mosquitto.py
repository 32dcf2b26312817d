"""A real Mosquitto broker for the tests: started on a free port of 127.0.0.1, stopped (and restartable) by the
test. `require("mosquitto", ...)` when the broker is not installed."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.prerequisites import require

START_WITHIN_S = 10.0


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """One Mosquitto process on `port`; `stop()` and `start()` again on the same port (a broker restart)."""

    def __init__(self, binary: str, folder: Path, users: dict[str, str] | None = None) -> None:
        self.binary = binary
        self.port = free_port()
        self.config = folder / "mosquitto.conf"
        # persistence as a depot's broker should have it: sessions and queued messages survive a restart
        store = folder / "store"
        store.mkdir(exist_ok=True)
        store.chmod(0o777)  # started as root, mosquitto drops to its own user before it writes there
        settings = f"listener {self.port} 127.0.0.1\npersistence true\npersistence_location {store}/\n"
        if users:  # only these users, by password (mosquitto_passwd writes the file's hashes)
            passwords = folder / "passwords"
            passwords.touch(mode=0o644)
            tool = shutil.which("mosquitto_passwd") or "mosquitto_passwd"
            for user, password in users.items():
                subprocess.run([tool, "-b", str(passwords), user, password], check=True, capture_output=True)
            passwords.chmod(0o644)
            # started as root, mosquitto reads the file after it drops to its own user, which cannot enter the
            # test's folder: it stays root here (a setting without effect for any other user)
            settings += f"allow_anonymous false\npassword_file {passwords}\nuser root\n"
        else:
            settings += "allow_anonymous true\n"
        self.config.write_text(settings)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + START_WITHIN_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"mosquitto exited at start: {error.strip()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on port {self.port} within {START_WITHIN_S} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    binary = mosquitto_binary()
    require("mosquitto", None if binary else "no mosquitto on PATH (apt-get install mosquitto)")
    assert binary is not None
    running = Broker(binary, tmp_path)
    running.start()
    try:
        yield running
    finally:
        running.stop()
