"""Regenerate the message classes and EXI codecs from the XSDs: `python -m tools.exigen [--check] [--codec-only]`."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from stack import schemas

from .emit_codec import CodecEmitter, shared_module
from .emit_messages import MessagesEmitter
from .model import NAMESPACE_MODULES, SchemaModel

ROOT = Path(__file__).resolve().parents[2]
MESSAGES_DIR = ROOT / "stack" / "messages"
CODEC_DIR = ROOT / "stack" / "exi" / "gen"


def generate() -> dict[Path, str]:
    """Every generated file and its text."""
    model = SchemaModel()
    files = {MESSAGES_DIR / f"{mod}.py": MessagesEmitter(model, ns).emit() for ns, mod in NAMESPACE_MODULES.items()}
    emitters = {sid: CodecEmitter(model, sid) for sid in schemas.SCHEMA_IDS}
    blocks = {sid: e.blocks() for sid, e in emitters.items()}
    shared = shared_types(blocks)
    enum_types = {k: v for e in emitters.values() for k, v in e.enum_types().items()}
    first = {}
    for sid in schemas.SCHEMA_IDS:
        for key, block in blocks[sid].items():
            first.setdefault(key, block)
    files[CODEC_DIR / "shared.py"] = shared_module([first[k] for k in sorted(shared)], enum_types)
    for sid, emitter in emitters.items():
        files[CODEC_DIR / f"{schemas.schema_set(sid).codec_module}.py"] = emitter.emit(shared)
    files[CODEC_DIR / "__init__.py"] = '"""Generated EXI codecs, one module per schema set (see tools/exigen)."""\n'
    return _formatted(files)


def shared_types(blocks: dict[str, dict]) -> set[str]:
    """Types generated identically in every schema set that uses them (in two sets or more), with all their
    dependencies shared too: their codecs are generated once, in `gen/shared.py`."""
    seen: dict[str, list] = {}
    for per_set in blocks.values():
        for key, block in per_set.items():
            seen.setdefault(key, []).append(block)
    shared = {
        key
        for key, found in seen.items()
        if len(found) > 1 and all((b.code, b.tables) == (found[0].code, found[0].tables) for b in found)
    }
    changed = True
    while changed:  # a type stays local when one of its children does
        changed = False
        for key in list(shared):
            if any(dep not in shared for dep in seen[key][0].deps):
                shared.discard(key)
                changed = True
    return shared


def _formatted(files: dict[Path, str]) -> dict[Path, str]:
    """Run ruff's import sorting and formatter over the output, so committed code is tidy and stable."""
    out = {}
    for path, text in files.items():
        for cmd in (["ruff", "check", "--select", "I", "--fix", "--quiet"], ["ruff", "format", "--quiet"]):
            res = subprocess.run(
                [sys.executable, "-m", *cmd, "--stdin-filename", str(path), "-"],
                input=text,
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            if res.returncode not in (0, 1) or not res.stdout:
                raise RuntimeError(f"ruff failed on {path}: {res.stderr}")
            text = res.stdout
        out[path] = text
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.exigen", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the committed files differ")
    parser.add_argument("--codec-only", action="store_true", help="write only the codecs (stack/exi/gen)")
    args = parser.parse_args(argv)
    files = generate()
    if args.codec_only:
        files = {p: text for p, text in files.items() if p.parent == CODEC_DIR}
    stale = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
    if args.check:
        for p in stale:
            print(f"out of date: {p.relative_to(ROOT)}")
        return 1 if stale else 0
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(files[p])
        print(f"wrote {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
