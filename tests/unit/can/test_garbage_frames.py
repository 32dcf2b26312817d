"""Garbage on the bus: every codec that reads frames takes any frame (any ID, any length, any bytes) without
raising; a frame that is not its own, or not well formed, is ignored (None, no reply)."""

from __future__ import annotations

import can
from hypothesis import given, settings
from hypothesis import strategies as st

from evse_emulator.hal.can.family import family, family_names
from evse_emulator.hal.can.io_board import IoBoardCodec, IoBoardDriver
from evse_emulator.hal.can.model import EmulatedModule

FRAMES = st.builds(
    lambda frame_id, data, extended: can.Message(arbitration_id=frame_id, data=data, is_extended_id=extended),
    st.one_of(
        st.integers(0, 0x1FFFFFFF),
        st.sampled_from([0x029C01F0, 0x0283F000, 0x02A401F0, 0x02A3F000, 0x06080780, 0x060F8000, 0x18F00100]),
        st.sampled_from([0x18F00200, 0x18F00300, 0x18F00400, 0x02E300F0, 0x02C200F0]),
    ),
    st.binary(min_size=0, max_size=8),
    st.booleans(),
)


@settings(max_examples=400, deadline=None)
@given(frame=FRAMES)
def test_every_family_codec_takes_garbage_without_raising(frame: can.Message) -> None:
    for name in family_names():
        fam = family(name)
        db = fam.database()
        report = fam.driver(db).decode(frame)
        assert report is None or report.address >= 0
        modules = [EmulatedModule(a, fam.rating) for a in range(3)]
        replies = fam.module(db).answer(frame, modules, 0.0)
        assert all(isinstance(r, can.Message) for r in replies)


@settings(max_examples=400, deadline=None)
@given(frame=FRAMES)
def test_the_io_board_takes_garbage_without_raising(frame: can.Message) -> None:
    IoBoardCodec().decode_command(frame)
    IoBoardDriver(lambda frames: None, lambda: 0.0).on_frame(frame)
