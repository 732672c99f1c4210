"""Faults on demand: the control-message schema, the fault state, and the stream mangling.

``POST /_sim/faults`` takes one JSON object; every key is optional and several
may be combined (``clear`` is applied first). The same object can be given at
start-up (``SimConfig.faults`` / ``arbengine sim --faults JSON``)::

    {
      "clear": true,                                   # forget every fault set before
      "drop_ws": {"which": "all|market|private", "mode": "abort|close"},
      "withhold": {"symbol": "BTCUSDT", "from_id": 1000, "to_id": 1010, "rest": true},
                                                       # or a list of those; the stream
                                                       # never sends these aggTrade ids,
                                                       # REST history keeps them; with
                                                       # "rest": false REST answers as if
                                                       # they never existed (a fromId among
                                                       # them starts after them) until a
                                                       # "clear": a hole no repair can close
      "duplicate": {"count": 5, "symbol": null},       # next N aggTrade messages sent twice
      "reorder": {"count": 6, "symbol": null},         # next N aggTrade messages swapped pairwise
                                                       # (the state's "injected" counts the
                                                       # extra copies and the messages moved)
      "malformed": {"count": 2, "kind": "json|frame"}, # N bad frames to every market client:
                                                       # truncated JSON text, or a frame with a
                                                       # reserved opcode (a protocol error)
      "rest_429": {"count": 2, "retry_after": 1},      # next N REST calls answer 429 -1003 …
      "rest_418": {"count": 1, "retry_after": 2},      # … then the next M answer 418 -1003
      "http_5xx": {"count": 1, "status": 503, "path": "/fapi/v1/premiumIndex",
                   "symbol": null},                    # next N calls (to a path prefix, for
                                                       # one symbol if given) fail
                                                       # with a 5xx, 408 (backend timeout),
                                                       # 403 (a WAF's HTML page) or any other
                                                       # 4xx (404, 451 …: a plain-text body)
      "order_5xx": {"count": 1, "status": 503, "execute": true},
                                                       # next N orders (order or algoOrder)
                                                       # answer 5xx (or 408); with execute the
                                                       # order was nevertheless carried out
      "order_reject": {"count": 1, "code": -2019},     # next N orders (order or algoOrder)
                                                       # refused with Binance's 400 and
                                                       # message for the code: -2019 margin,
                                                       # -4164 notional, -1111 precision,
                                                       # -1021 recvWindow, -2022 reduceOnly,
                                                       # -4131 PERCENT_PRICE; nothing executed
      "order_drop": {"count": 1, "execute": true},     # next N orders: carried out (with
                                                       # execute), then the HTTP connection is
                                                       # cut without an answer (counted as
                                                       # status 499 in /_sim/state)
      "fill_delay": {"count": 1, "ms": 500},           # next N orders: carried out and answered
                                                       # at once, their user-stream events
                                                       # (fill, ACCOUNT_UPDATE) sent ms later
                                                       # each of these four takes "on": which
                                                       # calls it hits: "any" (the default: a
                                                       # new order or algo order), "order"
                                                       # (POST /fapi/v1/order), "algo" (POST
                                                       # /fapi/v1/algoOrder) or "cancel"
                                                       # (DELETE of either; carried out = the
                                                       # order cancelled; a cancel is refused
                                                       # with -1021 only)
      "latency": {"rest_ms": 200, "ws_ms": 0},         # added delay (0 removes it)
      "hang": {"seconds": 3, "scope": "all|rest|ws"},  # stop answering: REST calls are held,
                                                       # websockets get no data and no pongs;
                                                       # with "path" (a prefix) or "symbol",
                                                       # only those REST calls are held
                                                       # (a later "clear" answers them)
      "silence": {"which": "market|private", "symbol": null, "seconds": 30},
                                                       # or a list of those; the connections
                                                       # stay open and answer pings, but send
                                                       # no data (market: aggTrade, trade,
                                                       # markPrice, forceOrder, of one symbol
                                                       # if given; private: user-stream
                                                       # events) for that long or until a
                                                       # "clear"; what was not sent is lost
                                                       # (trades stay in REST history)
      "expire_listen_key": true,                       # listenKeyExpired now
      "slippage": {"symbol": "BTCUSDT", "bps": 600},   # thin book: market fills move (-4131)
      "ban": {"seconds": 5}                            # ban 127.0.0.1 now (418 until it ends)
    }

The reply is the resulting fault state (also in ``GET /_sim/state``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec


class DropSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    which: Literal["all", "market", "private"] = "all"
    mode: Literal["abort", "close"] = "abort"


class WithholdSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    symbol: str
    from_id: int
    to_id: int
    rest: bool = True


class CountSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    count: int
    symbol: str | None = None


class MalformedSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    count: int = 1
    kind: Literal["json", "frame"] = "json"


class RestLimitSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    count: int = 1
    retry_after: int = 2


class Http5xxSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    count: int = 1
    status: int = 503
    path: str = "/"
    symbol: str | None = None


OrderCall = Literal["any", "order", "algo", "cancel"]
"""Which order calls an order fault hits: ``any`` new order or algo order (POST
``/fapi/v1/order`` or ``/fapi/v1/algoOrder``), only one of the two, or a ``cancel``
(DELETE of either)."""


def hits(on: OrderCall, call: OrderCall) -> bool:
    """Whether a fault set ``on`` calls of one kind hits this ``call``."""
    return on == call or (on == "any" and call != "cancel")


class Order5xxSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    count: int = 1
    status: int = 503
    execute: bool = True
    on: OrderCall = "any"


ORDER_REJECTIONS: dict[int, str] = {
    -2019: "Margin is insufficient.",
    -4164: "Order's notional must be no smaller than {min_notional} (unless you choose reduce "
    "only).",
    -1111: "Precision is over the maximum defined for this asset.",
    -1021: "Timestamp for this request is outside of the recvWindow.",
    -2022: "ReduceOnly Order is rejected.",
    -4131: "The counterparty's best price does not meet the PERCENT_PRICE filter limit.",
}
"""Binance's message for each order rejection ``order_reject`` can force."""
CANCEL_REJECTIONS = frozenset({-1021})
"""The codes a cancel can be refused with here (the others refuse a placement only)."""


class OrderRejectSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    code: int
    count: int = 1
    on: OrderCall = "any"


class OrderDropSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    count: int = 1
    execute: bool = True
    on: OrderCall = "any"


class FillDelaySpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    ms: int
    count: int = 1
    on: OrderCall = "any"


class LatencySpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    rest_ms: int = 0
    ws_ms: int = 0


class HangSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    seconds: float
    scope: Literal["all", "rest", "ws"] = "all"
    path: str = "/"
    symbol: str | None = None


class SilenceSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    which: Literal["market", "private"]
    seconds: float
    symbol: str | None = None


class SlippageSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    symbol: str
    bps: float


class BanSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    seconds: float = 120.0


class FaultRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    clear: bool = False
    drop_ws: DropSpec | None = None
    withhold: WithholdSpec | list[WithholdSpec] | None = None
    duplicate: CountSpec | None = None
    reorder: CountSpec | None = None
    malformed: MalformedSpec | None = None
    rest_429: RestLimitSpec | None = None
    rest_418: RestLimitSpec | None = None
    http_5xx: Http5xxSpec | None = None
    order_5xx: Order5xxSpec | None = None
    order_reject: OrderRejectSpec | None = None
    order_drop: OrderDropSpec | None = None
    fill_delay: FillDelaySpec | None = None
    latency: LatencySpec | None = None
    hang: HangSpec | None = None
    silence: SilenceSpec | list[SilenceSpec] | None = None
    expire_listen_key: bool = False
    slippage: SlippageSpec | None = None
    ban: BanSpec | None = None


def decode_request(body: bytes) -> FaultRequest:
    """Parse a control body; ``msgspec.ValidationError`` / ``DecodeError`` name what is wrong."""
    return msgspec.json.decode(body or b"{}", type=FaultRequest)


def _error_status(status: int, any_4xx: bool) -> bool:
    if any_4xx:  # 418 and 429 have faults of their own, with their headers
        return 400 <= status <= 599 and status not in (418, 429)
    return 500 <= status <= 599 or status == 408


@dataclass(slots=True)
class FaultState:
    """Faults in force. Counters count down as the faults are served."""

    withheld: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    missing_from_rest: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    """aggTrade id ranges REST answers as if they never existed (``withhold`` with
    ``"rest": false``), until a clear."""
    duplicate: int = 0
    duplicate_symbol: str | None = None
    reorder: int = 0
    reorder_symbol: str | None = None
    malformed: int = 0
    malformed_kind: str = "json"
    rest_429: int = 0
    rest_429_retry: int = 2
    rest_418: int = 0
    rest_418_retry: int = 2
    http_5xx: int = 0
    http_5xx_status: int = 503
    http_5xx_path: str = "/"
    http_5xx_symbol: str | None = None
    order_5xx: int = 0
    order_5xx_status: int = 503
    order_5xx_execute: bool = True
    order_5xx_on: OrderCall = "any"
    order_reject: int = 0
    order_reject_code: int = -2019
    order_reject_on: OrderCall = "any"
    order_drop: int = 0
    order_drop_execute: bool = True
    order_drop_on: OrderCall = "any"
    fill_delay: int = 0
    fill_delay_ms: int = 0
    fill_delay_on: OrderCall = "any"
    rest_latency_ms: int = 0
    ws_latency_ms: int = 0
    hang_until: float = 0.0
    hang_scope: str = "all"
    hang_path: str = "/"
    hang_symbol: str | None = None
    duplicated: int = 0
    """Extra copies sent since the last clear (proof for a test that the fault fired)."""
    reordered: int = 0
    """Messages sent out of order since the last clear (a swap of two equal ones moves none)."""
    silenced: dict[tuple[str, str | None], float] = field(default_factory=dict)
    """``(which, symbol or None)`` → when (monotonic) the silence ends."""
    silenced_messages: int = 0
    """Data messages not sent because of a silence, since the last clear."""

    def clear(self) -> None:
        fresh = FaultState()
        for name in self.__slots__:
            setattr(self, name, getattr(fresh, name))

    def apply(self, req: FaultRequest, now: float) -> None:
        """Record the lasting faults of ``req`` (actions such as drops are the server's)."""
        if req.clear:
            self.clear()
        if req.withhold is not None:
            specs = req.withhold if isinstance(req.withhold, list) else [req.withhold]
            for w in specs:
                if w.to_id < w.from_id:
                    raise ValueError("withhold: to_id must not be below from_id")
                self.withheld.setdefault(w.symbol.upper(), []).append((w.from_id, w.to_id))
                if not w.rest:
                    ranges = self.missing_from_rest.setdefault(w.symbol.upper(), [])
                    ranges.append((w.from_id, w.to_id))
        if req.duplicate is not None:
            self.duplicate = max(0, req.duplicate.count)
            self.duplicate_symbol = req.duplicate.symbol
        if req.reorder is not None:
            self.reorder = max(0, req.reorder.count)
            self.reorder_symbol = req.reorder.symbol
        if req.malformed is not None:
            self.malformed = max(0, req.malformed.count)
            self.malformed_kind = req.malformed.kind
        if req.rest_429 is not None:
            self.rest_429 = max(0, req.rest_429.count)
            self.rest_429_retry = req.rest_429.retry_after
        if req.rest_418 is not None:
            self.rest_418 = max(0, req.rest_418.count)
            self.rest_418_retry = req.rest_418.retry_after
        if req.http_5xx is not None:
            if not _error_status(req.http_5xx.status, any_4xx=True):
                raise ValueError("http_5xx: status must be 4xx (not 418 or 429) or 5xx")
            self.http_5xx = max(0, req.http_5xx.count)
            self.http_5xx_status = req.http_5xx.status
            self.http_5xx_path = req.http_5xx.path
            self.http_5xx_symbol = req.http_5xx.symbol
        if req.order_5xx is not None:
            if not _error_status(req.order_5xx.status, any_4xx=False):
                raise ValueError("order_5xx: status must be 5xx or 408")
            self.order_5xx = max(0, req.order_5xx.count)
            self.order_5xx_status = req.order_5xx.status
            self.order_5xx_execute = req.order_5xx.execute
            self.order_5xx_on = req.order_5xx.on
        if req.order_reject is not None:
            if req.order_reject.code not in ORDER_REJECTIONS:
                known = ", ".join(str(c) for c in ORDER_REJECTIONS)
                raise ValueError(f"order_reject: code must be one of {known}")
            if req.order_reject.on == "cancel" and req.order_reject.code not in CANCEL_REJECTIONS:
                raise ValueError(
                    f"order_reject: a cancel is refused with -1021 only, not "
                    f"{req.order_reject.code} (that code refuses a new order)"
                )
            self.order_reject = max(0, req.order_reject.count)
            self.order_reject_code = req.order_reject.code
            self.order_reject_on = req.order_reject.on
        if req.order_drop is not None:
            self.order_drop = max(0, req.order_drop.count)
            self.order_drop_execute = req.order_drop.execute
            self.order_drop_on = req.order_drop.on
        if req.fill_delay is not None:
            if req.fill_delay.ms < 0:
                raise ValueError("fill_delay: ms must not be negative")
            self.fill_delay = max(0, req.fill_delay.count)
            self.fill_delay_ms = req.fill_delay.ms
            self.fill_delay_on = req.fill_delay.on
        if req.latency is not None:
            self.rest_latency_ms = max(0, req.latency.rest_ms)
            self.ws_latency_ms = max(0, req.latency.ws_ms)
        if req.hang is not None:
            narrow = req.hang.path != "/" or req.hang.symbol is not None
            if narrow and req.hang.scope == "ws":
                raise ValueError("hang: path and symbol narrow REST calls, not websockets")
            self.hang_until = now + max(0.0, req.hang.seconds)
            self.hang_scope = "rest" if narrow else req.hang.scope
            self.hang_path = req.hang.path
            self.hang_symbol = req.hang.symbol
        if req.silence is not None:
            silences = req.silence if isinstance(req.silence, list) else [req.silence]
            for spec in silences:
                if not spec.seconds > 0:
                    raise ValueError("silence: seconds must be above 0")
                if spec.which == "private" and spec.symbol is not None:
                    raise ValueError("silence: symbol narrows the market streams, not the user's")
                symbol = None if spec.symbol is None else spec.symbol.upper()
                self.silenced[(spec.which, symbol)] = now + spec.seconds

    def silent(self, which: str, now: float, symbol: str | None = None) -> bool:
        """Whether ``which`` ("market" for ``symbol``, or "private") must send no data now."""
        if not self.silenced:
            return False
        for key in [k for k, until in self.silenced.items() if until <= now]:
            del self.silenced[key]
        return (which, None) in self.silenced or (
            symbol is not None and (which, symbol) in self.silenced
        )

    def hanging(self, scope: str, now: float, path: str = "/", symbol: str | None = None) -> float:
        """Seconds the ``scope`` ("rest"/"ws") must still stay silent (0 when answering);
        for REST, of a call to ``path`` for ``symbol``."""
        if now >= self.hang_until or self.hang_scope not in ("all", scope):
            return 0.0
        if not path.startswith(self.hang_path) or self.hang_symbol not in (None, symbol):
            return 0.0
        return self.hang_until - now

    def stream_faults_active(self, symbol: str) -> bool:
        return bool(self.duplicate or self.reorder or symbol in self.withheld)

    def mangle(self, symbol: str, payloads: list[bytes], ids: list[int]) -> list[bytes]:
        """Apply withholding, duplication and reordering to one symbol's aggTrade messages."""
        ranges = self.withheld.get(symbol)
        if ranges:
            keep = [i for i, a in enumerate(ids) if not any(lo <= a <= hi for lo, hi in ranges)]
            if len(keep) != len(ids):
                payloads = [payloads[i] for i in keep]
            last = ids[-1] if ids else None
            if last is not None:
                remaining = [(lo, hi) for lo, hi in ranges if hi > last]
                if remaining:
                    self.withheld[symbol] = remaining
                else:
                    del self.withheld[symbol]
        if self.duplicate and self.duplicate_symbol in (None, symbol) and payloads:
            k = min(self.duplicate, len(payloads))
            doubled = [p for p in payloads[:k] for _ in range(2)]
            payloads = doubled + payloads[k:]
            self.duplicate -= k
            self.duplicated += k
        if self.reorder and self.reorder_symbol in (None, symbol) and len(payloads) > 1:
            k = min(self.reorder, len(payloads))
            head = payloads[:k]
            for i in range(0, k - 1, 2):
                head[i], head[i + 1] = head[i + 1], head[i]
                self.reordered += 2 if head[i] != head[i + 1] else 0
            payloads = head + payloads[k:]
            self.reorder -= k
        return payloads

    def snapshot(self, now: float) -> dict[str, Any]:
        return {
            "withheld": {s: [list(r) for r in rs] for s, rs in self.withheld.items()},
            "missing_from_rest": {
                s: [list(r) for r in rs] for s, rs in self.missing_from_rest.items()
            },
            "duplicate": self.duplicate,
            "reorder": self.reorder,
            "injected": {
                "duplicated": self.duplicated,
                "reordered": self.reordered,
                "silenced": self.silenced_messages,
            },
            "malformed": self.malformed,
            "rest_429": self.rest_429,
            "rest_418": self.rest_418,
            "http_5xx": self.http_5xx,
            "order_5xx": self.order_5xx,
            "order_5xx_execute": self.order_5xx_execute,
            "order_5xx_on": self.order_5xx_on,
            "order_reject": self.order_reject,
            "order_reject_code": self.order_reject_code,
            "order_reject_on": self.order_reject_on,
            "order_drop": self.order_drop,
            "order_drop_on": self.order_drop_on,
            "fill_delay": self.fill_delay,
            "fill_delay_ms": self.fill_delay_ms,
            "fill_delay_on": self.fill_delay_on,
            "latency": {"rest_ms": self.rest_latency_ms, "ws_ms": self.ws_latency_ms},
            "hang_seconds_left": round(max(0.0, self.hang_until - now), 3),
            "hang_scope": self.hang_scope,
            "hang_path": self.hang_path,
            "hang_symbol": self.hang_symbol,
            "silence": [
                {"which": which, "symbol": symbol, "seconds_left": round(until - now, 3)}
                for (which, symbol), until in self.silenced.items()
                if until > now
            ],
        }
