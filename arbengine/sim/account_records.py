"""What the simulated account remembers: its orders, conditional orders, fills and income."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from arbengine.sim.margin import ZERO


@dataclass(slots=True)
class Order:
    order_id: int
    client_id: str
    symbol: str
    side: str
    qty: Decimal
    reduce_only: bool
    time: int
    orig_type: str = "MARKET"
    close_position: bool = False
    stop_price: Decimal = ZERO
    working_type: str = "CONTRACT_PRICE"
    price_protect: bool = False
    status: str = "NEW"
    executed: Decimal = ZERO
    avg_price: Decimal = ZERO
    cum_quote: Decimal = ZERO
    update_time: int = 0


@dataclass(slots=True)
class AlgoOrder:
    algo_id: int
    client_algo_id: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal | None
    trigger: Decimal
    close_position: bool
    reduce_only: bool
    working_type: str
    price_protect: bool
    create_time: int
    status: str = "NEW"
    update_time: int = 0
    trigger_time: int = 0
    actual_order_id: int | None = None
    avg_price: Decimal = ZERO
    executed: Decimal = ZERO
    reject_reason: str = ""


@dataclass(frozen=True, slots=True)
class SimFill:
    trade_id: int
    order_id: int
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    realized: Decimal
    time: int


@dataclass(frozen=True, slots=True)
class Income:
    tran_id: int
    symbol: str
    kind: str
    amount: Decimal
    time: int
    info: str = ""
    trade_id: str = ""
