"""`mcs-v2g can decode FILE`: a bus log (candump .log, .asc, .blf) printed with our DBC files."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .common import CliError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("can", help="CAN tools: decode a bus log with the module family's DBC")
    tools = p.add_subparsers(dest="can_command", required=True)
    decode = tools.add_parser(
        "decode",
        help="print a bus log decoded: time (the log's, epoch s), ID, sender, frame, signals (with their units)",
    )
    decode.add_argument("file", type=Path, help="a candump .log, .asc or .blf file (e.g. from sim --can-log)")
    decode.add_argument("--family", required=True, help="the module family on the bus (see plant --list-families)")
    decode.add_argument("--json", action="store_true", help="one JSON object per frame")
    decode.set_defaults(func=run_decode)


def run_decode(args: argparse.Namespace) -> int:
    from evse_emulator.hal.can.decode import FrameDecoder, read_log
    from evse_emulator.hal.can.family import family

    if args.file.is_dir():
        raise CliError(f"{args.file}: is a folder, a bus log file is needed")
    if not args.file.is_file():
        raise CliError(f"{args.file}: no such file")
    if args.file.suffix.lower() not in (".log", ".asc", ".blf"):
        raise CliError(f"{args.file}: the file name must end in .log, .asc or .blf")
    decoder = FrameDecoder(family(args.family))
    frames = unknown = 0
    try:
        for frame in read_log(args.file, decoder):
            frames += 1
            unknown += frame.name == "unknown"
            if args.json:
                print(json.dumps({**asdict(frame), "frame_id": f"{frame.frame_id:08X}", "data": frame.data.hex()}))
            else:
                print(frame.line())
    except BrokenPipeError:  # `| head`: the reader had enough
        sys.stdout = None  # type: ignore[assignment]  # no flush of a closed pipe at exit
        return 0
    except Exception as exc:  # python-can's readers raise their own types (BLFParseError, struct.error, ...)
        raise CliError(f"{args.file}: not a readable bus log: {exc or type(exc).__name__}") from None
    if frames == 0:
        print(f"mcs-v2g: note: {args.file}: no CAN frames in it", file=sys.stderr)
    elif unknown:
        print(
            f"mcs-v2g: note: {unknown} of {frames} frames are not {args.family}'s nor the I/O board's", file=sys.stderr
        )
    return 0
