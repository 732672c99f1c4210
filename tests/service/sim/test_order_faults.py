"""Order faults and account events on demand (``/_sim/faults``, ``/_sim/account``), the ones
live-trading tests need, over real sockets."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from arbengine.sim import SimServer
from tests.service.sim.conftest import START
from tests.service.sim.simclient import AiohttpReader, control, signed

BUY = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010"}


@pytest.fixture
async def ready(sim: SimServer) -> SimServer:
    await sim.advance_to(START + 10_000)
    return sim


@pytest.fixture
async def user_stream(
    ready: SimServer, http: aiohttp.ClientSession
) -> AsyncIterator[AiohttpReader]:
    async with http.post(
        f"{ready.rest_url}/fapi/v1/listenKey", headers={"X-MBX-APIKEY": ready.config.api_key}
    ) as resp:
        key = (await resp.json())["listenKey"]
    async with http.ws_connect(f"{ready.private_ws_url}/ws?listenKey={key}") as ws:
        yield AiohttpReader(ws)


async def positions(http: aiohttp.ClientSession, sim: SimServer) -> dict[str, str]:
    _, rows, _ = await signed(http, sim, "GET", "/fapi/v3/positionRisk")
    return {r["symbol"]: r["positionAmt"] for r in rows}


async def control_error(http: aiohttp.ClientSession, sim: SimServer, path: str, body: Any) -> str:
    async with http.post(f"{sim.control_url}/{path}", json=body) as resp:
        assert resp.status == 400
        error: str = (await resp.json())["error"]
        return error


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (-2019, "Margin is insufficient"),
        (-4164, "notional must be no smaller than"),
        (-1111, "Precision is over the maximum"),
        (-1021, "outside of the recvWindow"),
        (-2022, "ReduceOnly Order is rejected"),
        (-4131, "PERCENT_PRICE"),
    ],
)
async def test_order_reject_refuses_the_next_orders_with_the_code(
    ready: SimServer, http: aiohttp.ClientSession, code: int, words: str
) -> None:
    await control(http, ready, "faults", {"order_reject": {"count": 2, "code": code}})
    for path, params in (
        ("/fapi/v1/order", BUY),
        (
            "/fapi/v1/algoOrder",
            {
                "algoType": "CONDITIONAL",
                "symbol": "BTCUSDT",
                "side": "SELL",
                "type": "STOP_MARKET",
                "triggerPrice": "1000",
                "closePosition": "true",
            },
        ),
    ):
        status, body, headers = await signed(http, ready, "POST", path, params)
        assert (status, body["code"]) == (400, code)
        assert words in body["msg"]
        assert "X-MBX-ORDER-COUNT-1M" in headers
    assert await positions(http, ready) == {}
    _, algos, _ = await signed(http, ready, "GET", "/fapi/v1/openAlgoOrders")
    assert algos == []
    status, placed, _ = await signed(http, ready, "POST", "/fapi/v1/order", BUY)
    assert status == 200, placed  # the count was used up
    assert (await control(http, ready, "faults", {}))["order_reject"] == 0


async def test_order_reject_with_an_unknown_code_is_refused(
    ready: SimServer, http: aiohttp.ClientSession
) -> None:
    error = await control_error(http, ready, "faults", {"order_reject": {"code": -9999}})
    assert error.startswith("faults: order_reject: code must be one of -2019")


@pytest.mark.parametrize("execute", [True, False])
async def test_order_drop_cuts_the_connection_after_accepting(
    ready: SimServer, http: aiohttp.ClientSession, execute: bool
) -> None:
    await control(http, ready, "faults", {"order_drop": {"count": 1, "execute": execute}})
    params = {**BUY, "newClientOrderId": "dropped-1"}
    with pytest.raises(aiohttp.ClientError):
        await signed(http, ready, "POST", "/fapi/v1/order", params)
    _, found, _ = await signed(
        http,
        ready,
        "GET",
        "/fapi/v1/order",
        {"symbol": "BTCUSDT", "origClientOrderId": "dropped-1"},
    )
    if execute:
        assert found["status"] == "FILLED"
        assert await positions(http, ready) == {"BTCUSDT": "0.010"}
    else:
        assert found["code"] == -2013
        assert await positions(http, ready) == {}
    status, again, _ = await signed(http, ready, "POST", "/fapi/v1/order", params)
    assert (status == 200) is not execute, again  # a blind retry would double it: -4116


async def test_fill_delay_holds_the_user_stream_report(
    ready: SimServer, http: aiohttp.ClientSession, user_stream: AiohttpReader
) -> None:
    await control(http, ready, "faults", {"fill_delay": {"count": 1, "ms": 400}})
    sent = time.monotonic()
    status, reply, _ = await signed(http, ready, "POST", "/fapi/v1/order", BUY)
    answered = time.monotonic()
    assert status == 200, reply
    assert answered - sent < 0.4  # the REST answer is not held
    events = await user_stream.until(lambda m: len(m) == 3)
    assert time.monotonic() - sent >= 0.4  # the injected delay is a lower bound
    assert [e["e"] for e in events] == [
        "ORDER_TRADE_UPDATE",
        "ACCOUNT_UPDATE",
        "ORDER_TRADE_UPDATE",
    ]
    assert events[2]["o"]["X"] == "FILLED"
    # The next order is reported at once again (the count was one).
    started = time.monotonic()
    await signed(http, ready, "POST", "/fapi/v1/order", BUY)
    await user_stream.until(lambda m: len(m) == 3)
    assert time.monotonic() - started < 0.4


async def test_listen_key_expired_on_demand_then_answers_1125(
    ready: SimServer, http: aiohttp.ClientSession, user_stream: AiohttpReader
) -> None:
    await control(http, ready, "faults", {"expire_listen_key": True})
    assert (await user_stream.next())["e"] == "listenKeyExpired"
    headers = {"X-MBX-APIKEY": ready.config.api_key}
    async with http.put(f"{ready.rest_url}/fapi/v1/listenKey", headers=headers) as resp:
        assert (resp.status, (await resp.json())["code"]) == (400, -1125)


async def test_hedge_mode_set_behind_the_clients_back(
    ready: SimServer, http: aiohttp.ClientSession
) -> None:
    reply = await control(http, ready, "account", {"dual_side_position": True})
    assert reply["dualSidePosition"] is True
    _, mode, _ = await signed(http, ready, "GET", "/fapi/v1/positionSide/dual")
    assert mode == {"dualSidePosition": True}
    status, body, _ = await signed(http, ready, "POST", "/fapi/v1/order", BUY)
    assert (status, body["code"]) == (400, -4061)
    status, body, _ = await signed(
        http, ready, "POST", "/fapi/v1/positionSide/dual", {"dualSidePosition": "false"}
    )
    assert status == 200, body
    _, mode, _ = await signed(http, ready, "GET", "/fapi/v1/positionSide/dual")
    assert mode == {"dualSidePosition": False}
    assert (await signed(http, ready, "POST", "/fapi/v1/order", BUY))[0] == 200
    error = await control_error(http, ready, "account", {"dual_side_position": True})
    assert error == "account: dual_side_position cannot change while a position is open"


async def test_liquidation_on_demand_closes_the_position_with_autoclose(
    ready: SimServer, http: aiohttp.ClientSession, user_stream: AiohttpReader
) -> None:
    assert (await signed(http, ready, "POST", "/fapi/v1/order", BUY))[0] == 200
    stop = {
        "algoType": "CONDITIONAL",
        "symbol": "BTCUSDT",
        "side": "SELL",
        "type": "STOP_MARKET",
        "triggerPrice": "1000",
        "closePosition": "true",
    }
    assert (await signed(http, ready, "POST", "/fapi/v1/algoOrder", stop))[0] == 200
    await user_stream.until(lambda m: len(m) == 4)  # the entry's three events and the algo's
    reply = await control(http, ready, "account", {"liquidate": "BTCUSDT"})
    client_id = reply["orders"][0]["clientOrderId"]
    assert client_id.startswith("autoclose-")
    events = await user_stream.until(lambda m: len(m) == 4)
    assert [e["e"] for e in events] == [
        "ORDER_TRADE_UPDATE",
        "ACCOUNT_UPDATE",
        "ORDER_TRADE_UPDATE",
        "ALGO_UPDATE",
    ]
    assert {e["o"]["c"] for e in (events[0], events[2])} == {client_id}
    assert (events[2]["o"]["x"], events[2]["o"]["X"]) == ("CALCULATED", "FILLED")
    assert events[1]["a"]["P"][0]["pa"] == "0.000"
    assert events[3]["o"]["X"] == "EXPIRED"
    assert await positions(http, ready) == {}
    _, found, _ = await signed(
        http, ready, "GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": client_id}
    )
    assert found["status"] == "FILLED"
    error = await control_error(http, ready, "account", {"liquidate": "BTCUSDT"})
    assert error == "account: no BTCUSDT position to liquidate"


async def test_orphan_position_opened_as_if_by_another_client(
    ready: SimServer, http: aiohttp.ClientSession, user_stream: AiohttpReader
) -> None:
    reply = await control(
        http,
        ready,
        "account",
        {"orphan": {"symbol": "ETHUSDT", "side": "SELL", "quantity": "0.500"}},
    )
    client_id = reply["orders"][0]["clientOrderId"]
    assert client_id.startswith("web_")
    events = await user_stream.until(lambda m: len(m) == 3)
    assert [e["e"] for e in events] == [
        "ORDER_TRADE_UPDATE",
        "ACCOUNT_UPDATE",
        "ORDER_TRADE_UPDATE",
    ]
    assert events[2]["o"]["c"] == client_id
    assert events[1]["a"]["P"][0]["pa"] == "-0.500"
    assert await positions(http, ready) == {"ETHUSDT": "-0.500"}
    _, trades, _ = await signed(http, ready, "GET", "/fapi/v1/userTrades", {"symbol": "ETHUSDT"})
    assert len(trades) == 1
    error = await control_error(
        http, ready, "account", {"orphan": {"symbol": "ETHUSDT", "side": "UP", "quantity": "1"}}
    )
    assert error == "account: side must be BUY or SELL, got 'UP'"
    error = await control_error(
        http,
        ready,
        "account",
        {"orphan": {"symbol": "ETHUSDT", "side": "BUY", "quantity": "0.0005"}},
    )
    assert "not a multiple of ETHUSDT's step size" in error


STOP = {
    "algoType": "CONDITIONAL",
    "symbol": "BTCUSDT",
    "side": "SELL",
    "type": "STOP_MARKET",
    "triggerPrice": "1000",
    "closePosition": "true",
    "clientAlgoId": "stop-1",
}


async def algo_status(http: aiohttp.ClientSession, sim: SimServer) -> str:
    _, found, _ = await signed(http, sim, "GET", "/fapi/v1/algoOrder", {"clientAlgoId": "stop-1"})
    status: str = found["algoStatus"]
    return status


async def place_position_and_stop(http: aiohttp.ClientSession, sim: SimServer) -> None:
    assert (await signed(http, sim, "POST", "/fapi/v1/order", BUY))[0] == 200
    assert (await signed(http, sim, "POST", "/fapi/v1/algoOrder", STOP))[0] == 200


async def cancel_stop(http: aiohttp.ClientSession, sim: SimServer) -> tuple[int, Any]:
    status, body, _ = await signed(
        http, sim, "DELETE", "/fapi/v1/algoOrder", {"clientAlgoId": "stop-1"}
    )
    return status, body


@pytest.mark.parametrize(
    ("fault", "answer", "cancelled"),
    [
        ({"order_5xx": {"on": "cancel", "execute": True}}, (503, -1007), "CANCELED"),
        ({"order_5xx": {"on": "cancel", "execute": False}}, (503, -1007), "NEW"),
        ({"order_reject": {"on": "cancel", "code": -1021}}, (400, -1021), "NEW"),
    ],
)
async def test_a_cancel_can_be_faulted_and_placements_are_not(
    ready: SimServer,
    http: aiohttp.ClientSession,
    fault: dict[str, Any],
    answer: tuple[int, int],
    cancelled: str,
) -> None:
    await control(http, ready, "faults", fault)
    await place_position_and_stop(http, ready)  # set on cancels: these go through
    [name] = fault
    state = await control(http, ready, "faults", {})
    assert (state[name], state[f"{name}_on"]) == (1, "cancel")

    status, body = await cancel_stop(http, ready)
    assert (status, body["code"]) == answer
    assert await algo_status(http, ready) == cancelled
    assert (await control(http, ready, "faults", {}))[name] == 0


@pytest.mark.parametrize("execute", [True, False])
async def test_a_cancel_cut_without_an_answer(
    ready: SimServer, http: aiohttp.ClientSession, execute: bool
) -> None:
    await control(http, ready, "faults", {"order_drop": {"on": "cancel", "execute": execute}})
    await place_position_and_stop(http, ready)

    # aiohttp sends a DELETE again by itself when its connection is cut: the second
    # cancel finds the order cancelled by the first (-2011), or cancels it.
    status, body = await cancel_stop(http, ready)
    assert ready.requests.counts()["/fapi/v1/algoOrder"]["statuses"]["499"] == 1
    if execute:
        assert (status, body["code"]) == (400, -2011)
    else:
        assert (status, body["msg"]) == (200, "success")
    assert await algo_status(http, ready) == "CANCELED"


async def test_a_fault_on_algo_orders_leaves_the_entry_alone(
    ready: SimServer, http: aiohttp.ClientSession
) -> None:
    await control(http, ready, "faults", {"order_reject": {"code": -2019, "on": "algo"}})
    assert (await signed(http, ready, "POST", "/fapi/v1/order", BUY))[0] == 200
    status, body, _ = await signed(http, ready, "POST", "/fapi/v1/algoOrder", STOP)
    assert (status, body["code"]) == (400, -2019)


async def test_fill_delay_on_a_cancel_holds_its_report(
    ready: SimServer, http: aiohttp.ClientSession, user_stream: AiohttpReader
) -> None:
    assert (await signed(http, ready, "POST", "/fapi/v1/order", BUY))[0] == 200
    assert (await signed(http, ready, "POST", "/fapi/v1/algoOrder", STOP))[0] == 200
    await user_stream.until(lambda m: len(m) == 4)
    await control(http, ready, "faults", {"fill_delay": {"ms": 400, "on": "cancel"}})
    sent = time.monotonic()
    status, body, _ = await signed(
        http, ready, "DELETE", "/fapi/v1/algoOrder", {"clientAlgoId": "stop-1"}
    )
    assert (status, body["clientAlgoId"]) == (200, "stop-1")
    [event] = await user_stream.until(lambda m: len(m) == 1)
    assert time.monotonic() - sent >= 0.4
    assert (event["e"], event["o"]["X"]) == ("ALGO_UPDATE", "CANCELED")


async def test_a_cancel_refused_with_a_placement_code_is_not_a_fault(
    ready: SimServer, http: aiohttp.ClientSession
) -> None:
    error = await control_error(
        http, ready, "faults", {"order_reject": {"code": -2019, "on": "cancel"}}
    )
    assert error == (
        "faults: order_reject: a cancel is refused with -1021 only, not -2019 "
        "(that code refuses a new order)"
    )
