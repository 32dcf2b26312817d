"""Small pieces every exchange module uses: the header, and what a response code means for the outcome."""

from __future__ import annotations

from stack.messages import iso20_types as ct

from ..state import Outcome

RC = ct.ResponseCode
ONGOING = (ct.Processing.Ongoing, ct.Processing.Ongoing_WaitingForCustomerInteraction)


def header(session_id: bytes, now: float) -> ct.MessageHeader:
    return ct.MessageHeader(session_id=session_id, time_stamp=int(now))


def code_outcome(code: object) -> Outcome | None:
    """FAILED codes end the session and WARNING codes refuse the step (LIB15118: codes >= FAILED end it);
    None for the OK codes, whose meaning depends on the exchange."""
    text = str(code)
    if text.lower().startswith("failed"):
        return Outcome.FAILED
    if text.startswith("WARNING"):
        return Outcome.REFUSED
    return None


def processing_outcome(code: object, processing: ct.Processing) -> Outcome:
    """Outcome of a response with EVSEProcessing: Ongoing asks the EV to repeat its request."""
    by_code = code_outcome(code)
    if by_code is not None:
        return by_code
    return Outcome.ONGOING if processing in ONGOING else Outcome.OK
