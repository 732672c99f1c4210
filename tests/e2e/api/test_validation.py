"""Bad input is a 400 naming the field; 401 has the same shape; headers and CORS on every answer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from arbengine.api.http_app import all_routes
from tests.e2e.api.harness import ApiUnderTest, Session, running_api
from tests.support.postgres import PgTestServer

pytestmark = pytest.mark.asyncio(loop_scope="module")

DASHBOARD = "https://dash.example.com"
DAY = 86_400_000


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(
    pg_server: PgTestServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ApiUnderTest]:
    async with running_api(
        pg_server, tmp_path_factory.mktemp("validation"), {"ARB_HTTP_CORS_ORIGINS": DASHBOARD}
    ) as under_test:
        yield under_test


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def session(api: ApiUnderTest) -> Session:
    return await api.new_user("validator")


BAD_QUERIES = [
    ("/api/snapshots?symbol=DOGEUSDT", "unknown_symbol", "symbol"),
    ("/api/history?symbol=btcusdt", "invalid_parameter", "symbol"),
    ("/api/snapshots", "invalid_parameter", "symbol"),
    ("/api/kline?symbol=BTCUSDT&interval=2h", "invalid_parameter", "interval"),
    ("/api/trades/summary?symbol=BTCUSDT&interval=1w", "invalid_parameter", "interval"),
    ("/api/kline?symbol=BTCUSDT&series=volume", "invalid_parameter", "series"),
    ("/api/snapshots?symbol=BTCUSDT&from=2000&to=1000", "invalid_range", "from"),
    ("/api/snapshots?symbol=BTCUSDT&from=1000&to=1000", "invalid_range", "from"),
    (f"/api/snapshots?symbol=BTCUSDT&from=0&to={8 * DAY}", "invalid_range", "from"),
    (f"/api/kline?symbol=BTCUSDT&interval=1m&from=0&to={1501 * 60_000}", "invalid_range", "from"),
    (
        f"/api/trades/summary?symbol=BTCUSDT&interval=1d&from=0&to={8 * DAY}",
        "invalid_range",
        "from",
    ),
    (f"/api/signals/history?from=0&to={367 * DAY}", "invalid_range", "from"),
    ("/api/snapshots?symbol=BTCUSDT&limit=5001", "invalid_parameter", "limit"),
    ("/api/signals/history?limit=1001", "invalid_parameter", "limit"),
    ("/api/paper/trades?limit=0", "invalid_parameter", "limit"),
    ("/api/snapshots?symbol=BTCUSDT&from=abc", "invalid_parameter", "from"),
    ("/api/snapshots?symbol=BTCUSDT&from=-5", "invalid_parameter", "from"),
    ("/api/snapshots?symbol=BTCUSDT&from=1.5", "invalid_parameter", "from"),
    ("/api/snapshots?symbol=BTCUSDT&to=99999999999999999999", "invalid_parameter", "to"),
    ("/api/snapshots?symbol=BTCUSDT&symbl=ETHUSDT", "invalid_parameter", "symbl"),
    ("/api/snapshots?symbol=BTCUSDT&symbol=ETHUSDT", "invalid_parameter", "symbol"),
    ("/api/stats?verbose=1", "invalid_parameter", "verbose"),
    ("/api/paper/trades?status=pending", "invalid_parameter", "status"),
    ("/api/signals/history?strategy=%00v51", "invalid_parameter", "strategy"),
    ("/api/signals/latest?strategy=v51%3Bdrop", "invalid_parameter", "strategy"),
    ("/api/rates?debug=1", "invalid_parameter", "debug"),
]


@pytest.mark.parametrize(("path", "code", "field"), BAD_QUERIES)
async def test_bad_query_is_400_naming_the_field(
    api: ApiUnderTest, session: Session, path: str, code: str, field: str
) -> None:
    reply = await api.get(path, session.access)
    assert reply.status == 400, reply.body
    assert reply.body == {
        "error": {"code": code, "message": reply.error["message"], "field": field}
    }
    assert reply.error["message"]


async def test_limit_at_the_cap_is_accepted(api: ApiUnderTest, session: Session) -> None:
    reply = await api.get("/api/snapshots?symbol=BTCUSDT&limit=5000", session.access)
    assert reply.status == 200


async def test_every_authenticated_operation_refuses_anonymous_callers(
    api: ApiUnderTest,
) -> None:
    document = (await api.get("/api/openapi.json")).body
    checked = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if not operation["security"]:
                continue
            parameters = operation.get("parameters", [])
            required = [p["name"] for p in parameters if p["required"] and p["in"] == "query"]
            query = "&".join(f"{name}=BTCUSDT" for name in required)
            url = path
            for parameter in parameters:
                if parameter["in"] == "path":
                    url = url.replace(f"{{{parameter['name']}}}", "1")
            reply = await api.request(method.upper(), f"{url}?{query}" if query else url)
            assert reply.status == 401, path
            assert reply.body == {
                "error": {
                    "code": "unauthorized",
                    "message": "an Authorization: Bearer token is required",
                    "field": None,
                }
            }
            checked.append(path)
    assert sorted(checked) == sorted(r.path for r in all_routes() if r.authenticated)


async def test_body_errors_name_the_problem(api: ApiUnderTest) -> None:
    as_text = await api.post(
        "/api/login",
        data=b'{"username": "a", "password": "b"}',
        headers={"Content-Type": "text/plain"},
    )
    assert (as_text.status, as_text.error["code"]) == (415, "unsupported_media_type")

    broken = await api.post(
        "/api/login", data=b'{"username": ', headers={"Content-Type": "application/json"}
    )
    assert (broken.status, broken.error["code"], broken.error["field"]) == (
        400,
        "invalid_body",
        None,
    )

    extra = await api.post("/api/login", {"username": "abc", "password": "x", "admin": True})
    assert (extra.status, extra.error["field"]) == (400, "admin")

    twice = await api.post(
        "/api/login",
        data=b'{"username": "abc", "password": "x", "username": "root"}',
        headers={"Content-Type": "application/json"},
    )
    assert (twice.status, twice.error["code"], twice.error["field"]) == (
        400,
        "invalid_body",
        "username",
    )
    assert twice.error["message"] == "username is given 2 times"

    wrong_type = await api.post("/api/login", {"username": "abc", "password": 12345})
    assert (wrong_type.status, wrong_type.error["field"]) == (400, "password")

    huge = await api.post("/api/login", {"username": "abc", "password": "x" * 100_000})
    assert (huge.status, huge.error["code"]) == (413, "payload_too_large")


async def test_wrong_method_is_405_with_allow(api: ApiUnderTest) -> None:
    reply = await api.request("DELETE", "/api/rates")
    assert reply.status == 405
    assert reply.headers["Allow"] == "GET"
    assert reply.error["code"] == "method_not_allowed"
    head = await api.request("HEAD", "/api/login")
    assert head.status == 405


async def test_unknown_path_is_a_json_404(api: ApiUnderTest) -> None:
    reply = await api.get("/api/nothing-here")
    assert reply.status == 404
    assert reply.error == {
        "code": "not_found",
        "message": "no route for /api/nothing-here",
        "field": None,
    }


async def test_security_headers_on_every_kind_of_answer(
    api: ApiUnderTest, session: Session
) -> None:
    answers = [
        await api.get("/api/health"),
        await api.get("/api/stats", session.access),
        await api.get("/api/stats"),
        await api.get("/api/snapshots?symbol=NOPE", session.access),
        await api.get("/api/nothing-here"),
        await api.request("PUT", "/api/rates"),
        await api.get("/"),
        await api.get("/static/js/api.js"),
        await api.post("/api/logout", {"refresh_token": session.refresh}),
    ]
    assert sorted({a.status for a in answers}) == [200, 204, 400, 401, 404, 405]
    for answer in answers:
        headers = answer.headers
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert len(headers["X-Request-Id"]) >= 16
        assert "Cache-Control" in headers


async def test_a_well_formed_request_id_is_echoed_and_others_replaced(api: ApiUnderTest) -> None:
    echoed = await api.get("/api/health", headers={"X-Request-Id": "trace-42.a"})
    assert echoed.headers["X-Request-Id"] == "trace-42.a"
    replaced = await api.get("/api/health", headers={"X-Request-Id": "bad id\twith junk"})
    assert replaced.headers["X-Request-Id"] != "bad id\twith junk"


async def test_cors_is_granted_only_to_configured_origins(api: ApiUnderTest) -> None:
    allowed = await api.get("/api/rates", headers={"Origin": DASHBOARD})
    assert allowed.headers["Access-Control-Allow-Origin"] == DASHBOARD
    assert allowed.headers["Vary"] == "Origin"
    other = await api.get("/api/rates", headers={"Origin": "https://evil.example"})
    assert other.status == 200
    assert "Access-Control-Allow-Origin" not in other.headers

    preflight = await api.request(
        "OPTIONS",
        "/api/stats",
        headers={
            "Origin": DASHBOARD,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == DASHBOARD
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert "GET" in preflight.headers["Access-Control-Allow-Methods"]

    refused = await api.request(
        "OPTIONS",
        "/api/stats",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert refused.status == 403
    assert refused.error["code"] == "cors_origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in refused.headers
