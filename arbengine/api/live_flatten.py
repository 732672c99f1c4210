"""An admin's manual flatten: the daemon's executor closes one open live trade at market.

The route only asks (202): the executor places the close under the trade's own lock, as
it does a time exit, so the reply never waits on the exchange; the trade's orders and
events tell how it went.
"""

from __future__ import annotations

from arbengine.api.context import CONTEXT
from arbengine.api.http_errors import ApiError
from arbengine.api.schemas import LiveFlattenBody, LiveFlattenReply
from arbengine.api.services import Call
from arbengine.logs import get_logger


async def flatten(call: Call) -> LiveFlattenReply:
    body: LiveFlattenBody = call.body
    request_flatten = call.request.app[CONTEXT].live_flatten
    if request_flatten is None:
        raise ApiError(409, "live_off", "live trading does not run in this daemon")
    assert call.user is not None  # an admin route is authenticated
    found = await request_flatten(body.trade_id, call.user.username)
    if found is None:
        raise ApiError(
            404,
            "not_found",
            f"trade_id: {body.trade_id} is not an open live trade of this daemon's executor",
            "trade_id",
        )
    symbol, strategy = found
    get_logger("api").info(
        "live.flatten_requested",
        component="api",
        who=call.user.username,
        trade_id=body.trade_id,
        symbol=symbol,
        strategy=strategy,
    )
    return LiveFlattenReply(
        trade_id=body.trade_id, symbol=symbol, strategy=strategy, status="requested"
    )
