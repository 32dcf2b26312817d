"""Output paths checked at the door: a command refuses a file it could not write before it does any work."""

from __future__ import annotations

import os
from pathlib import Path

from .common import CliError

# what `--plot` writes: matplotlib's own backends (Agg, SVG, PDF), no image codec beyond matplotlib itself
PLOT_FORMATS = (".png", ".svg", ".pdf")
PLOT_EXTRA_MISSING = "plotting needs the plot extra: pip install 'mcs-v2g[plot]'"


def writable_file(path: Path, option: str, suffixes: tuple[str, ...] = ()) -> Path:
    """`path` as a file to create or overwrite: its folder exists and is writable, it is not a folder, and its
    extension is one of `suffixes` (when given). A `CliError` naming the option otherwise."""
    if suffixes and path.suffix.lower() not in suffixes:
        raise CliError(f"{option} {path}: the file name must end in {', '.join(suffixes)}")
    if path.is_dir():
        raise CliError(f"{option} {path}: is a folder, a file name is needed")
    folder = path.parent
    if not folder.is_dir():
        raise CliError(f"{option} {path}: folder {folder} does not exist")
    if path.exists() and not os.access(path, os.W_OK):
        raise CliError(f"{option} {path}: the file is not writable")
    if not path.exists() and not os.access(folder, os.W_OK | os.X_OK):
        raise CliError(f"{option} {path}: folder {folder} is not writable")
    if not path.exists() and not path.is_symlink():  # made and removed again: what a permission check cannot tell
        try:  # (/proc, a read-only mount); a link to a file still to be made is left to the write
            path.open("x").close()
            path.unlink()
        except FileExistsError:  # made meanwhile by someone else: it exists, and its owner writes it
            pass
        except OSError as exc:
            raise CliError(f"{option} {path}: cannot be written: {exc.strerror or exc}") from None
    return path


def writable_folder(path: Path, option: str) -> Path:
    """`path` as a folder to write files into: an existing writable folder, or one that can be made (its nearest
    existing parent is a writable folder). It is made here, before any work."""
    if path.exists() and not path.is_dir():
        raise CliError(f"{option} {path}: exists and is not a folder")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise CliError(f"{option} {path}: {existing} is not a writable folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"{option} {path}: cannot make the folder: {exc.strerror or exc}") from None
    return path


def plot_output(path: Path) -> Path:
    """`--plot FILE`: a writable PNG/SVG/PDF, and matplotlib importable (the `plot` extra)."""
    try:
        import matplotlib  # noqa: F401  (imported here only to tell whether the extra is installed)
    except ImportError:
        raise CliError(PLOT_EXTRA_MISSING) from None
    return writable_file(path, "--plot", PLOT_FORMATS)


# what `--can-log` writes: python-can's writers that its readers (and `mcs-v2g can decode`) read back
CAN_LOG_FORMATS = (".log", ".asc", ".blf")


def can_log_output(path: Path) -> Path:
    """`--can-log FILE`: a writable candump log, ASC or BLF file."""
    return writable_file(path, "--can-log", CAN_LOG_FORMATS)
