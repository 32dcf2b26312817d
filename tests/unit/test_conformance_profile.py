"""The device profile (PICS-like TOML) refuses every bad file with one line naming the file, the key and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcs_v2g.conformance.profile import ProfileError, load_profile
from stack.session.services import ControlMode, ServiceId


def test_a_good_profile_is_read(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('role = "evcc"\nservices = ["MCS_BPT"]\ncontrol_modes = ["dynamic"]\ntls = false\n')
    profile = load_profile(path, "evcc")
    assert profile.services == (ServiceId.MCS_BPT,) and profile.control_modes == (ControlMode.DYNAMIC,)
    assert not profile.tls and profile.tcp


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('colour = "red"\n', "unknown key 'colour'"),
        ("role = 'secc'\nservices = = 1\n", "not TOML"),
        ('role = "charger"\n', "role must be 'secc' or 'evcc'"),
        ('role = "evcc"\n', "the profile is for a evcc"),
        ('services = ["AC"]\n', "services: unknown 'AC'"),
        ("services = []\n", "services must be a non-empty list"),
        ('services = "DC"\n', "services must be a non-empty list"),
        ('control_modes = ["dynamic", 3]\n', "control_modes: unknown 3"),
        ('tls = "yes"\n', "tls must be true or false"),
        ("pause = 1\n", "pause must be true or false"),
        ("\x00\xff", "not TOML"),
    ],
)
def test_bad_profiles_are_one_typed_error(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / "p.toml"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ProfileError) as raised:
        load_profile(path, "secc")
    assert why in str(raised.value) and str(path) in str(raised.value) and "\n" not in str(raised.value)


def test_a_missing_file_is_a_profile_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="missing.toml"):
        load_profile(tmp_path / "missing.toml", "secc")
