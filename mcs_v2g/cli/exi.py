"""`mcs-v2g exi decode|encode`: EXI (hex or binary, a bare payload or a whole V2GTP frame) to XML and back."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, BinaryIO, Literal

from stack import exi, schemas
from stack.channel import ChannelError, decode_frame
from stack.v2gtp import build, looks_like_frame

from .common import CliError

MAX_INPUT_BYTES = 16 * 1024 * 1024  # far above any V2G message
# an argument written like a path is a file name, and an error when there is no such file
PATH_SUFFIXES = (".exi", ".hex", ".xml", ".bin")
_TEXT = re.compile(rb"[\x20-\x7e\t\r\n]*")  # printable ASCII: hex text; binary EXI starts 0x80 (or 0x01 0xFE)

Kind = Literal["hex", "xml", "exi"]


def read_input(arg: str) -> tuple[Kind, bytes]:
    """What an argument holds and its bytes: `-` is stdin, a file name is the file, anything else is inline.

    stdin or a file holds hex text, XML or binary EXI, told apart by content; inline text is hex or XML.
    """
    if arg == "-":
        data = _read(sys.stdin.buffer, "stdin")
    elif _looks_like_path(arg) or _exists(Path(arg)):
        data = _read_file(Path(arg))
    else:
        data = arg.encode()
        return ("xml" if data.lstrip().startswith(b"<") else "hex"), data
    text = data.removeprefix(b"\xef\xbb\xbf").strip()
    if text.startswith(b"<"):
        return "xml", text
    return ("hex", text) if _TEXT.fullmatch(text) else ("exi", data)


def _looks_like_path(arg: str) -> bool:
    return "/" in arg or "\\" in arg or arg.lower().endswith(PATH_SUFFIXES)


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):  # a name too long for the file system, a NUL: not a file name
        return False


def _read_file(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            return _read(f, str(path))
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise CliError(f"{path}: cannot read it: {exc.strerror or exc}") from None


def _read(stream: BinaryIO, name: str) -> bytes:
    data = stream.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise CliError(f"{name}: larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB, not a V2G message")
    if not data.strip():
        raise CliError(f"{name}: empty")
    return data


def _hex_bytes(text: bytes) -> bytes:
    cleaned = b"".join(text.split()).replace(b":", b"")
    if cleaned.lower().startswith(b"0x"):
        cleaned = cleaned[2:]
    if not cleaned:
        raise CliError("input is empty")
    try:
        return bytes.fromhex(cleaned.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise CliError("input is not hexadecimal (nor XML, a file name or - for stdin)") from None


def cmd_decode(args: argparse.Namespace) -> int:
    kind, raw = read_input(args.input)
    if kind == "xml":
        raise CliError("input is XML, not EXI: use `mcs-v2g exi encode`")
    data = raw if kind == "exi" else _hex_bytes(raw)
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
    kind, raw = read_input(args.input)
    if kind != "xml":
        raise CliError("input is not XML (EXI or hex?): use `mcs-v2g exi decode`")
    msg = exi.from_xml(raw)
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
    dec.add_argument("input", help="hex, or a file (hex text or binary EXI), or - for stdin")
    dec.add_argument("--schema", choices=schemas.SCHEMA_IDS, help="schema set (taken from the payload type of a frame)")
    dec.set_defaults(func=cmd_decode)
    enc = exi_sub.add_parser("encode", help="XML -> EXI (hex)")
    enc.add_argument("input", help="an XML file, inline XML, or - for stdin")
    enc.add_argument(
        "--strings",
        choices=("none", "table"),
        default="none",
        help="none: V2G profile, no string-table hits (default); table: EXIficient's default options",
    )
    enc.add_argument("--frame", action="store_true", help="print a whole V2GTP frame")
    enc.set_defaults(func=cmd_encode)
