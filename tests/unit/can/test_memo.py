"""The memoised cantools codec: the same bytes and signals as cantools, fresh dicts, and nothing failed kept."""

from __future__ import annotations

import pytest
from cantools.database.errors import EncodeError

from evse_emulator.hal.can import memo
from evse_emulator.hal.can.infypower import FAMILY

DB = FAMILY.database()
REPLY = DB.get_message_by_name("VoltageCurrentReply")
COUNT = DB.get_message_by_name("ModuleCountReply")


def test_encode_and_decode_agree_with_cantools_and_hit_the_cache() -> None:
    signals = {"OutputVoltage": 812.5, "OutputCurrent": 33.25}
    before = memo._encode.cache_info().hits
    data = memo.encode(REPLY, signals)
    assert data == REPLY.encode(signals)
    assert memo.encode(REPLY, dict(signals)) == data
    assert memo._encode.cache_info().hits == before + 1
    assert memo.decode(REPLY, data) == REPLY.decode(data)
    assert memo.decode(REPLY, bytearray(data)) == REPLY.decode(data)


def test_a_decoded_dict_is_the_callers_own() -> None:
    data = memo.encode(REPLY, {"OutputVoltage": 700.0, "OutputCurrent": 10.0})
    first = memo.decode(REPLY, data)
    first["OutputVoltage"] = -1.0
    first["injected"] = 1
    assert memo.decode(REPLY, data) == REPLY.decode(data)


def test_what_cantools_refuses_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(EncodeError):
            memo.encode(COUNT, {"ModuleCount": 300})
