"""The control endpoint tests use to drive the sim over HTTP (no auth, no weights).

``GET  /_sim/state``
    Mode, simulated and server time, per-symbol first/last aggTrade id, bid/ask,
    mark, funding, connections, the fault state, the account, and the REST calls
    answered per path (``requests``: count, and count per HTTP status).

``GET  /_sim/requests?path=/fapi/v1/premiumIndex&since=…``
    The wall times (epoch seconds) of the newest calls to one path (up to
    10 000), at or after ``since``: ``{"path", "count", "times"}``.

``POST /_sim/faults``
    A fault request, see ``faults.py`` for the schema; replies the fault state.

``POST /_sim/clock``
    ``{"advance_to": T}`` or ``{"advance_by": ms}`` (manual clock, or a paused
    realtime clock: everything up to T is generated and published before the
    reply), ``{"pause": true}``, ``{"resume": true}``, ``{"speed": 20}``
    (realtime only). Replies ``{"sim_time_ms", "mode", "paused", "speed"}``.

``POST /_sim/market``
    ``{"symbol": "BTCUSDT", "move_pct": -3.0}`` moves the price level by that
    percent now (from -50 to 50) and the price process carries on from there:
    the next aggTrades (those generated ahead of the clock are repriced), the
    best bid/ask, the mark (premiumIndex at once with a mark at the current
    time, the markPrice streams from their next push), positionRisk's
    markPrice and unRealizedProfit and the account's unrealised PnL all show
    it, and stops on the mark fire as they would (e.g. to push an open position
    into an unrealised loss). ``{"symbol": "BTCUSDT", "shock_bps": -300}``
    jumps the mid from the next simulated second (to trip stops);
    ``"regime": "volatile" | "calm" | "auto"`` forces or frees the regime;
    ``"delist": true`` takes the symbol off the exchange (gone from exchangeInfo,
    -1121 on market-data calls, its streams fall silent).

``POST /_sim/account``
    Changes made behind the client's back, each key optional:
    ``{"balance": "5000"}`` sets the wallet balance (an ADJUSTMENT update follows);
    ``{"dual_side_position": true}`` turns hedge mode on (``GET positionSide/dual``
    says so, orders are refused with -4061) or off; refused while a position is open;
    ``{"multi_assets_margin": true}`` turns multi-assets mode on (``GET multiAssetsMargin``
    says so) or off;
    ``{"liquidate": "BTCUSDT"}`` liquidates that position now at mark (an
    ``autoclose-…`` order: ORDER_TRADE_UPDATE ``CALCULATED``, ACCOUNT_UPDATE, its
    closePosition algos expired, REST shows it flat);
    ``{"orphan": {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.010",
    "client_id": null}}`` fills a market order as if another client had sent it
    (client id ``web_<orderId>`` unless given; the usual user-stream events).
    Replies the account (v3) with ``dualSidePosition`` and the ``orders`` made.

``POST /_sim/reset_limits``
    Forget request weights, order counts and bans.

``GET  /_sim/tape?symbol=BTCUSDT&from_id=…&to_id=…&limit=…``
    The released tape as REST rows (up to 100 000 per call): the ground truth a
    collector's stored trades must equal.

Errors are ``{"error": "..."}`` with status 400.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import msgspec
import orjson
from aiohttp import web

from arbengine.sim.faults import decode_request

if TYPE_CHECKING:
    from arbengine.sim.server import SimServer


def _reply(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS),
        status=status,
        content_type="application/json",
    )


def _bad(message: str) -> web.Response:
    return _reply({"error": message}, 400)


async def _json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    body = orjson.loads(raw or b"{}")
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object")
    return body


MAX_MOVE_PCT = 50.0


def _move_pct(value: Any) -> float:
    """``move_pct`` as a float; ValueError names what is wrong."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or abs(value) > MAX_MOVE_PCT
    ):
        raise ValueError(
            f"move_pct must be a number of percent from -{MAX_MOVE_PCT:g} to {MAX_MOVE_PCT:g}, "
            f"got {value!r}"
        )
    return float(value)


def _account_changes(sim: SimServer, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Apply ``POST /_sim/account``; the orders it made. ValueError names the bad part."""
    acc = sim.account
    orders: list[dict[str, Any]] = []
    if "balance" in body:
        acc.set_balance(Decimal(str(body["balance"])))
    if "dual_side_position" in body:
        wanted = body["dual_side_position"]
        if not isinstance(wanted, bool):
            raise ValueError("dual_side_position must be true or false")
        if wanted != acc.dual_side and any(p.amt != 0 for p in acc.positions.values()):
            raise ValueError("dual_side_position cannot change while a position is open")
        acc.dual_side = wanted
    if "multi_assets_margin" in body:
        multi = body["multi_assets_margin"]
        if not isinstance(multi, bool):
            raise ValueError("multi_assets_margin must be true or false")
        acc.multi_assets = multi
    if "liquidate" in body:
        orders.append(acc.liquidate(str(body["liquidate"]).upper()))
    if "orphan" in body:
        spec = body["orphan"]
        if not isinstance(spec, dict):
            raise ValueError("orphan must be an object {symbol, side, quantity[, client_id]}")
        unknown = set(spec) - {"symbol", "side", "quantity", "client_id"}
        missing = {"symbol", "side", "quantity"} - set(spec)
        if unknown or missing:
            raise ValueError(f"orphan: unknown keys {sorted(unknown)}, missing {sorted(missing)}")
        client_id = spec.get("client_id")
        orders.append(
            acc.open_orphan(
                str(spec["symbol"]).upper(),
                str(spec["side"]).upper(),
                Decimal(str(spec["quantity"])),
                None if client_id is None else str(client_id),
            )
        )
    return orders


def add_control_routes(app: web.Application, sim: SimServer) -> None:
    async def state(request: web.Request) -> web.Response:
        return _reply(sim.state())

    async def faults(request: web.Request) -> web.Response:
        try:
            req = decode_request(await request.read())
            return _reply(sim.apply_faults(req))
        except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as exc:
            return _bad(f"faults: {exc}")

    async def clock(request: web.Request) -> web.Response:
        try:
            body = await _json(request)
            unknown = set(body) - {"advance_to", "advance_by", "pause", "resume", "speed"}
            if unknown:
                raise ValueError(f"unknown keys {sorted(unknown)}")
            if body.get("pause"):
                sim.clock.pause()
            if "speed" in body:
                sim.clock.set_speed(float(body["speed"]))
            if "advance_to" in body:
                await sim.advance_to(int(body["advance_to"]))
            if "advance_by" in body:
                await sim.advance_by(int(body["advance_by"]))
            if body.get("resume"):
                sim.clock.set_ms(sim.market.now_ms)
                sim.clock.resume()
        except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
            return _bad(f"clock: {exc}")
        return _reply(
            {
                "sim_time_ms": sim.market.now_ms,
                "mode": str(sim.clock.mode),
                "paused": sim.clock.paused,
                "speed": sim.clock.speed,
            }
        )

    async def market(request: web.Request) -> web.Response:
        try:
            body = await _json(request)
            unknown = set(body) - {"symbol", "move_pct", "shock_bps", "regime", "delist"}
            if unknown:
                raise ValueError(f"unknown keys {sorted(unknown)}")
            symbol = str(body.get("symbol", "")).upper()
            if symbol not in sim.market.books:
                raise ValueError(f"unknown symbol {symbol!r}")
            if "move_pct" in body:
                sim.move_price(symbol, _move_pct(body["move_pct"]))
            if "shock_bps" in body:
                sim.market.shock(symbol, float(body["shock_bps"]))
            if "regime" in body:
                regime = body["regime"]
                if regime not in ("calm", "volatile", "auto"):
                    raise ValueError("regime must be calm, volatile or auto")
                sim.market.force_regime(symbol, None if regime == "auto" else regime)
            if body.get("delist") is True:
                sim.delist(symbol)
            elif "delist" in body:
                raise ValueError("delist must be true (a delisting cannot be undone)")
        except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
            return _bad(f"market: {exc}")
        return _reply(sim.state()["symbols"][symbol])

    async def account(request: web.Request) -> web.Response:
        try:
            body = await _json(request)
            unknown = set(body) - {
                "balance",
                "dual_side_position",
                "multi_assets_margin",
                "liquidate",
                "orphan",
            }
            if unknown:
                raise ValueError(f"unknown keys {sorted(unknown)}")
            orders = _account_changes(sim, body)
        except (ValueError, TypeError, InvalidOperation, orjson.JSONDecodeError) as exc:
            return _bad(f"account: {exc}")
        finally:
            sim.hub.publish_user(sim.account.drain())
            sim.hub.flush()
        reply = sim.account.account(3)
        reply["dualSidePosition"] = sim.account.dual_side
        reply["orders"] = orders
        return _reply(reply)

    async def reset_limits(request: web.Request) -> web.Response:
        sim.limiter.reset()
        return _reply({"ok": True})

    async def tape(request: web.Request) -> web.Response:
        q = request.query
        symbol = q.get("symbol", "").upper()
        if symbol not in sim.market.books:
            return _bad(f"tape: unknown symbol {symbol!r}")
        try:
            limit = min(int(q.get("limit", "100000")), 100_000)
            t = sim.market.books[symbol].tape
            lo = t.index_of_id(int(q["from_id"])) if "from_id" in q else 0
            hi = t.index_of_id(int(q["to_id"]) + 1) if "to_id" in q else t.released
        except ValueError as exc:
            return _bad(f"tape: {exc}")
        return _reply(t.rows(lo, min(hi, lo + limit)))

    async def requests(request: web.Request) -> web.Response:
        path = request.query.get("path", "")
        if not path:
            return _bad("requests: path is required, e.g. ?path=/fapi/v1/premiumIndex")
        try:
            since = float(request.query.get("since", "0"))
        except ValueError:
            return _bad(f"requests: since must be epoch seconds, got {request.query['since']!r}")
        counts = sim.requests.counts().get(path, {"count": 0})
        return _reply(
            {"path": path, "count": counts["count"], "times": sim.requests.times(path, since)}
        )

    app.router.add_get("/_sim/state", state)
    app.router.add_get("/_sim/requests", requests)
    app.router.add_post("/_sim/faults", faults)
    app.router.add_post("/_sim/clock", clock)
    app.router.add_post("/_sim/market", market)
    app.router.add_post("/_sim/account", account)
    app.router.add_post("/_sim/reset_limits", reset_limits)
    app.router.add_get("/_sim/tape", tape)
