"""The account's new-order limits on explicit times: our own orders in a sliding window,
the exchange's reported count within its aligned window, a -1015 pause."""

from __future__ import annotations

from arbengine.exchange.budget import ROLLOVER_GUARD_MS, OrderCounts, Wait, is_new_order

T0 = 1_700_000_000_000  # the start of a ten-second window (and of a minute)


def counts(per_10s: int = 4, per_minute: int = 100) -> OrderCounts:
    return OrderCounts(safety=1.0, limits=((10_000, per_10s), (60_000, per_minute)))


def test_only_placing_calls_are_new_orders() -> None:
    assert is_new_order("POST", "/fapi/v1/order")
    assert is_new_order("POST", "/fapi/v1/algoOrder")
    assert not is_new_order("DELETE", "/fapi/v1/algoOrder")  # a cancel
    assert not is_new_order("GET", "/fapi/v1/order")  # a query


def test_our_orders_never_pass_the_limit_in_any_span_of_the_interval() -> None:
    orders = counts(per_10s=4)
    sent = [T0 + 6_000, T0 + 7_000, T0 + 8_000, T0 + 9_000]
    for at in sent:
        assert orders.wait(at) is None
        orders.take(at)
    # A new aligned window starts at T0 + 10 s, but four went in the last 10 s: wait for
    # the oldest to leave the span, whatever the exchange's window alignment.
    assert orders.wait(T0 + 10_500) == Wait("orders", sent[0] + 10_000 - (T0 + 10_500) + 1)
    assert orders.wait(T0 + 16_001) is None


def test_the_safety_share_of_each_limit_is_used() -> None:
    orders = OrderCounts(safety=0.5, limits=((10_000, 4), (60_000, 100)))
    for at in (T0, T0 + 1):
        assert orders.wait(at) is None
        orders.take(at)
    assert orders.wait(T0 + 2) is not None


def test_the_exchanges_count_holds_orders_until_its_window_ends() -> None:
    orders = counts(per_10s=4)
    orders.take(T0 + 1_000)
    orders.reported(10_000, 4, T0 + 1_010)  # three more placed by others on the account
    assert orders.wait(T0 + 2_000) == Wait("orders", 8_000 + ROLLOVER_GUARD_MS)
    # A count from an earlier window says nothing about this one.
    assert orders.wait(T0 + 10_000 + ROLLOVER_GUARD_MS) is None


def test_our_orders_after_the_exchanges_count_are_added_to_it() -> None:
    orders = counts(per_10s=4)
    orders.reported(10_000, 2, T0 + 1_000)
    orders.take(T0 + 2_000)
    assert orders.wait(T0 + 2_500) is None  # 3 of 4
    orders.take(T0 + 3_000)
    assert orders.wait(T0 + 3_500) is not None  # 4 of 4, the exchange has not said so yet


def test_the_minute_limit_counts_too() -> None:
    orders = counts(per_10s=100, per_minute=3)
    for at in (T0, T0 + 15_000, T0 + 30_000):
        orders.take(at)
    wait = orders.wait(T0 + 40_000)
    assert wait == Wait("orders", 20_001)


def test_a_refusal_pauses_new_orders_until_then() -> None:
    orders = counts()
    orders.pause(T0 + 5_000)
    assert orders.wait(T0 + 1_000) == Wait("orders", 4_000)
    assert orders.wait(T0 + 5_000) is None


def test_limits_from_exchange_info_replace_the_defaults() -> None:
    orders = OrderCounts(safety=1.0)
    orders.set_limit(10_000, 2)
    for at in (T0, T0 + 1):
        orders.take(at)
    assert orders.wait(T0 + 2) is not None
    assert [w["limit"] for w in orders.view(T0 + 2)] == [2, 1200]
