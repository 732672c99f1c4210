"""Admins' emergency controls: pause, resume, flatten (a trade, a symbol, everything),
cancel-all, carried out by the daemon's ``LiveControls`` (the same path, records and
audit as ``arbengine live …``) and answered with the resulting state.

A flatten answers ``requested`` (202) as soon as its orders are on their way; its
verification (positions read back until zero) completes the command, which
``live_commands`` and a ``control.flatten`` event show. The exchange or the database
being away answers 503 ``unavailable`` with the command recorded as failed.
"""

from __future__ import annotations

import msgspec

from arbengine.api.context import CONTEXT
from arbengine.api.http_errors import ApiError, bad_request
from arbengine.api.schemas import LiveControlReply, LiveFlattenBody
from arbengine.api.services import Call
from arbengine.domain.control_rows import ControlAck, ControlCommand, ControlRequest
from arbengine.domain.errors import RetryableError

NOT_CARRIED_OUT = "not carried out:"
"""How a failed acknowledgement begins when the exchange or the database was away."""


async def pause(call: Call) -> LiveControlReply:
    return await _command(call, "pause")


async def resume(call: Call) -> LiveControlReply:
    return await _command(call, "resume")


async def cancel_all(call: Call) -> LiveControlReply:
    return await _command(call, "cancel_all")


async def flatten(call: Call) -> LiveControlReply:
    body: LiveFlattenBody = call.body
    chosen = [name for name, value in (("trade_id", body.trade_id), ("symbol", body.symbol),
                                       ("all", body.all or None)) if value is not None]  # fmt: skip
    if len(chosen) > 1:
        raise bad_request(
            "invalid_body",
            f"{chosen[1]}: give one of trade_id, symbol or all (got {', '.join(chosen)})",
            chosen[1],
        )
    reply = await _command(call, "flatten", symbol=body.symbol, trade_id=body.trade_id)
    if reply.detail.get("not_found"):
        raise ApiError(404, "not_found", reply.result, "trade_id")
    return reply


def flatten_status(reply: LiveControlReply) -> int:
    """202 while the flatten is under way, 200 when there was nothing to close."""
    return 202 if reply.status == "requested" else 200


async def _command(
    call: Call, command: ControlCommand, *, symbol: str | None = None, trade_id: int | None = None
) -> LiveControlReply:
    control = call.request.app[CONTEXT].live_control
    if control is None:
        raise ApiError(409, "live_off", "live trading does not run in this daemon")
    assert call.user is not None  # an admin route is authenticated
    request = ControlRequest(
        command=command, who=f"admin:{call.user.username}", symbol=symbol, trade_id=trade_id
    )
    try:
        ack = await control(request)
    except RetryableError as exc:  # its record could not be written: the database is away
        raise ApiError(503, "unavailable", f"{command}: {exc}"[:300]) from None
    if ack.status == "failed" and ack.result.startswith(NOT_CARRIED_OUT):
        raise ApiError(503, "unavailable", f"{command}: {ack.result}")
    return reply_of(ack)


def reply_of(ack: ControlAck) -> LiveControlReply:
    fields = msgspec.to_builtins(ack)
    fields["strategy"] = ack.detail.get("strategy")
    return msgspec.convert(fields, LiveControlReply)
