"""`writable_file`: an output path is tried before a run (a long run must not end in a write error), and the try
leaves nothing behind and refuses nothing that the write would take."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcs_v2g.cli.common import CliError
from mcs_v2g.cli.outputs import writable_file


def test_a_new_file_is_tried_and_not_left_behind(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    assert writable_file(path, "--json", (".json",)) == path
    assert not path.exists()


def test_an_existing_file_is_kept_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text("old")
    writable_file(path, "--json", (".json",))
    assert path.read_text() == "old"


def test_a_link_to_a_file_still_to_be_made_is_taken(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    link = tmp_path / "report.json"
    link.symlink_to(tmp_path / "real" / "today.json")
    assert writable_file(link, "--json", (".json",)) == link
    assert not (tmp_path / "real" / "today.json").exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="Linux /proc")
def test_a_folder_that_takes_no_new_file_is_refused_naming_the_option() -> None:
    with pytest.raises(CliError, match=r"^--json /proc/depot\.json: "):
        writable_file(Path("/proc/depot.json"), "--json", (".json",))
