"""The OpenAPI document: valid 3.1, one operation per route, parameters as the server reads them."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import schemathesis
from multidict import MultiDict

from arbengine.api.context import OPENAPI, ApiContext
from arbengine.api.http_app import all_routes, build_app
from arbengine.api.http_errors import ApiError
from arbengine.api.params import parse_query, resolve_range


async def _nothing() -> None:
    return None


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    app = build_app(
        ApiContext(
            version="9.9.9",
            started_monotonic=0.0,
            started_at=0.0,
            db_ping=_nothing,
            db_size=_nothing,  # type: ignore[arg-type]
            tasks=list,
            channels=list,
        )
    )
    return msgspec.json.decode(app[OPENAPI])


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    assert document["info"]["version"] == "9.9.9"
    schemathesis.openapi.from_dict(document).validate()  # the official 3.1 meta-schema


def test_every_route_is_one_operation_and_nothing_else_is(document: dict[str, Any]) -> None:
    documented = [
        (method.upper(), path) for path, ops in document["paths"].items() for method in ops
    ]
    routes = [(r.method, r.path) for r in all_routes()]
    assert sorted(documented) == sorted(routes)
    assert len(set(routes)) == len(routes)
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(set(ids)) == len(ids)


def test_authenticated_operations_declare_bearer_and_401(document: dict[str, Any]) -> None:
    for route in all_routes():
        operation = document["paths"][route.path][route.method.lower()]
        if route.authenticated:
            assert operation["security"] == [{"bearerAuth": []}]
            assert {"401", "403"} <= operation["responses"].keys()
        else:
            assert operation["security"] == []
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_query_parameters_are_the_ones_the_server_accepts(document: dict[str, Any]) -> None:
    kline = document["paths"]["/api/kline"]["get"]
    params = {p["name"]: p for p in kline["parameters"]}
    assert list(params) == ["symbol", "series", "interval", "from", "to"]
    assert params["symbol"]["required"] is True
    assert params["symbol"]["schema"]["enum"] == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
    assert params["from"]["required"] is False
    assert params["from"]["schema"]["type"] == "integer"  # no null: a query cannot say null
    assert params["interval"]["schema"]["enum"] == ["15m", "1d", "1h", "1m", "30m", "4h", "5m"]
    for route in all_routes():
        if not route.validate_query:
            continue
        operation = document["paths"][route.path][route.method.lower()]
        parameters = operation.get("parameters", [])
        required = [
            (p["name"], "BTCUSDT") for p in parameters if p["required"] and p["in"] == "query"
        ]
        parse_query(
            MultiDict(required), route.query, ["BTCUSDT"]
        )  # what the doc requires is enough
        in_path = [p["name"] for p in parameters if p["in"] == "path"]
        assert all(p["required"] for p in parameters if p["in"] == "path")
        fields = route.path_params.__struct_fields__ if route.path_params else ()
        assert sorted(in_path) == sorted(fields)


def test_errors_are_documented_with_the_error_shape(document: dict[str, Any]) -> None:
    error = document["components"]["schemas"]["ErrorDetail"]
    assert set(error["required"]) == {"code", "message", "field"}
    snapshots = document["paths"]["/api/snapshots"]["get"]["responses"]
    assert snapshots["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    health = document["paths"]["/api/health"]["get"]["responses"]
    assert health["503"]["content"] == health["200"]["content"]  # same shape, unhealthy


def test_ranged_operations_state_their_caps(document: dict[str, Any]) -> None:
    snapshots = document["paths"]["/api/snapshots"]["get"]
    assert snapshots["x-range"] == {"default_span_ms": 3_600_000, "max_span_ms": 604_800_000}
    assert "span at most 7 days" in snapshots["description"]
    summary = document["paths"]["/api/trades/summary"]["get"]["x-range"]
    assert (summary["max_bars"], summary["max_span_ms"]) == (1500, 604_800_000)
    assert summary["interval_ms"]["1h"] == 3_600_000
    ranged = [
        (path, method)
        for path, ops in document["paths"].items()
        for method, op in ops.items()
        if "x-range" in op
    ]
    assert sorted(ranged) == sorted(
        (r.path, r.method.lower())
        for r in all_routes()
        if r.validate_query and "to" in r.query.__struct_fields__
    )


@pytest.mark.parametrize(
    "route",
    [r for r in all_routes() if "to" in r.query.__struct_fields__],
    ids=lambda r: r.path,
)
def test_the_stated_caps_are_exactly_what_the_server_enforces(
    document: dict[str, Any], route: Any
) -> None:
    rule = document["paths"][route.path][route.method.lower()]["x-range"]
    end = 10 * 366 * 86_400_000
    pairs = [("symbol", "BTCUSDT")]
    if "strategy" in route.query.__struct_fields__:
        pairs.append(("strategy", "v52"))  # required by /api/signals/evaluations
    caps = [rule["max_span_ms"]] if "max_span_ms" in rule else []
    if "max_bars" in rule:
        pairs.append(("interval", "1m"))
        caps.append(rule["max_bars"] * rule["interval_ms"]["1m"])
    cap = min(caps)

    def window(span: int) -> Any:
        query = parse_query(
            MultiDict([*pairs, ("from", str(end - span)), ("to", str(end))]),
            route.query,
            ["BTCUSDT"],
        )
        return resolve_range(query, end)

    assert window(cap).end - window(cap).start == cap
    with pytest.raises(ApiError) as caught:
        window(cap + 1)
    assert (caught.value.code, caught.value.field) == ("invalid_range", "from")


def test_register_states_the_invite_rules(document: dict[str, Any]) -> None:
    register = document["paths"]["/api/register"]["post"]
    assert "403" in register["responses"]
    assert "403 invalid_invite" in register["description"]
    invite = document["components"]["schemas"]["RegisterBody"]["properties"]["invite_code"]
    assert invite["pattern"] == "^[A-Za-z0-9_-]{8,64}$"
    assert "single-use" in invite["description"]


def test_admin_operations_say_so_and_declare_403(document: dict[str, Any]) -> None:
    admin = [r for r in all_routes() if r.admin]
    assert sorted((r.method, r.path) for r in admin) == [
        ("GET", "/api/admin/audit"),
        ("GET", "/api/admin/invites"),
        ("GET", "/api/admin/users"),
        ("GET", "/api/live/config"),
        ("POST", "/api/admin/invites"),
        ("POST", "/api/admin/invites/{code}/revoke"),
        ("POST", "/api/admin/users/{id}/ban"),
        ("POST", "/api/admin/users/{id}/role"),
        ("POST", "/api/admin/users/{id}/unban"),
        ("POST", "/api/live/cancel-all"),
        ("POST", "/api/live/flatten"),
        ("POST", "/api/live/pause"),
        ("POST", "/api/live/resume"),
        ("PUT", "/api/live/config"),
    ]
    for route in all_routes():
        operation = document["paths"][route.path][route.method.lower()]
        assert operation.get("x-roles") == (["admin"] if route.admin else None)
        if route.admin:
            assert operation["security"] == [{"bearerAuth": []}]
            assert {"401", "403"} <= operation["responses"].keys()
