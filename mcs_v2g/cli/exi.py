"""`mcs-v2g exi decode|encode`: EXI (hex, or a whole V2GTP frame) to XML and back."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from stack import exi, schemas
from stack.channel import ChannelError, decode_frame
from stack.v2gtp import build, looks_like_frame

from .common import CliError


def _read_text(arg: str) -> str:
    if arg == "-":
        return sys.stdin.read()
    path = Path(arg)
    if path.exists():
        return path.read_text()
    return arg


def _hex_bytes(text: str) -> bytes:
    cleaned = "".join(text.split()).replace(":", "")
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise CliError("input is not hexadecimal") from None


def cmd_decode(args: argparse.Namespace) -> int:
    data = _hex_bytes(_read_text(args.input))
    if looks_like_frame(data):  # the payload type picks the schema unless --schema says otherwise
        try:
            message = decode_frame(data, args.schema).message
        except ChannelError as exc:
            raise CliError(str(exc)) from None
    elif args.schema is None:
        raise CliError("not a V2GTP frame: pass --schema (one of " + ", ".join(schemas.SCHEMA_IDS) + ")")
    else:
        message = exi.decode(data, args.schema)
    print(exi.to_xml(message), end="")
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    msg = exi.from_xml(_read_text(args.input))
    data = exi.encode(msg, string_table=args.strings == "table")
    if args.frame:
        schema = schemas.schema_set(schemas.default_schema_id(type(msg)))
        if schema.payload_type is None:
            raise CliError(f"schema {schema.id} has no V2GTP payload type")
        data = build(schema.payload_type, data)
    print(data.hex())
    return 0


def add_parser(sub: Any) -> None:
    p_exi = sub.add_parser("exi", help="EXI codec: decode to XML, encode from XML")
    exi_sub = p_exi.add_subparsers(dest="exi_command", required=True)
    dec = exi_sub.add_parser("decode", help="EXI (hex) or a whole V2GTP frame (hex) -> XML")
    dec.add_argument("input", help="hex string, a file holding it, or - for stdin")
    dec.add_argument("--schema", choices=schemas.SCHEMA_IDS, help="schema set (taken from the payload type of a frame)")
    dec.set_defaults(func=cmd_decode)
    enc = exi_sub.add_parser("encode", help="XML -> EXI (hex)")
    enc.add_argument("input", help="XML file or - for stdin")
    enc.add_argument(
        "--strings",
        choices=("none", "table"),
        default="none",
        help="none: V2G profile, no string-table hits (default); table: EXIficient's default options",
    )
    enc.add_argument("--frame", action="store_true", help="print a whole V2GTP frame")
    enc.set_defaults(func=cmd_encode)
