"""The OpenAPI 3.1 document, generated from the route table and its msgspec types.

msgspec emits JSON Schema 2020-12, which is what OpenAPI 3.1 uses, so the
schemas go in unchanged. Query parameters come from the query Struct's
properties (an optional parameter is simply not required; the ``null`` that
msgspec allows for ``X | None`` is dropped, since a query string cannot say
null). The ``symbol`` parameter is an enum of the configured symbols, as that
is what the server accepts.

A rule JSON Schema cannot state, because it relates two parameters, is stated
in prose and in an ``x-range`` extension on the operation: how long a
``from``/``to`` range may be (in milliseconds and in bars of ``interval``), and
what is assumed when either is left out. Clients (and the contract test's
fuzzer) read the caps from there rather than from a copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from arbengine.api import schemas as s
from arbengine.api.routes import Route

REF = "#/components/schemas/{name}"

_ERROR_TEXT = {
    400: "Invalid parameter or body (the field is named)",
    401: "Missing, invalid or expired token",
    403: "Banned account, invalid invite code, or not allowed",
    404: "No such thing (the field is named)",
    409: "Conflict",
    413: "Body too large",
    415: "The body must be application/json",
    429: "Too many attempts (see Retry-After)",
    503: "The database is unavailable or too slow",
}


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    options = schema.get("anyOf")
    if options is None:
        return schema
    kept = [o for o in options if o.get("type") != "null"]
    rest = {k: v for k, v in schema.items() if k != "anyOf"}
    if len(kept) == 1:
        return {**rest, **kept[0]}
    return {**rest, "anyOf": kept}


def _parameters(
    query: type[msgspec.Struct], symbols: Sequence[str], where: str = "query"
) -> list[dict[str, Any]]:
    _, components = msgspec.json.schema_components([query], ref_template=REF)
    shape = components[query.__name__]
    required = set(shape.get("required", []))
    out = []
    for name, schema in shape.get("properties", {}).items():
        schema = _without_null(dict(schema))
        if schema.get("default") is None:
            schema.pop("default", None)
        if name == "symbol":
            schema["enum"] = list(symbols)
        description = schema.pop("description", None)
        parameter: dict[str, Any] = {
            "name": name,
            "in": where,
            "required": name in required or where == "path",
            "schema": schema,
        }
        if description:
            parameter["description"] = description
        out.append(parameter)
    return out


def _span_text(ms: int) -> str:
    for unit, size in (("days", 86_400_000), ("hours", 3_600_000), ("minutes", 60_000)):
        if ms % size == 0:
            count = ms // size
            return f"{count} {unit[:-1] if count == 1 else unit}"
    return f"{ms} ms"


def range_rule(query: type[s._Query]) -> dict[str, Any] | None:
    """A ranged route's ``x-range``: its caps and defaults, as ``resolve_range`` applies them."""
    if "to" not in query.__struct_fields__:
        return None
    rule: dict[str, Any] = {}
    for key, value in (
        ("default_span_ms", query.DEFAULT_SPAN_MS),
        ("max_span_ms", query.MAX_SPAN_MS),
        ("default_bars", query.DEFAULT_BARS),
        ("max_bars", query.MAX_BARS),
    ):
        if value is not None:
            rule[key] = value
    if "interval" in query.__struct_fields__:
        rule["interval_ms"] = dict(s.INTERVAL_MS)
    return rule


def _range_text(rule: dict[str, Any]) -> str:
    caps = []
    if "max_span_ms" in rule:
        caps.append(f"at most {_span_text(rule['max_span_ms'])}")
    if "max_bars" in rule:
        caps.append(f"at most {rule['max_bars']} bars of interval")
    if "default_bars" in rule:
        default = f"{rule['default_bars']} bars of interval"
    elif "default_span_ms" in rule:
        default = _span_text(rule["default_span_ms"])
    else:
        default = None
    text = "The range must have from < to" + (f" and span {' and '.join(caps)}" if caps else "")
    text += " (else 400 invalid_range, field from). Without to: now."
    if default is not None:
        text += f" Without from: {default} before to (never beyond the caps)."
    else:
        text += " Without from: everything before to."
    return text + " Caps in x-range."


def _content(response: Any) -> dict[str, Any] | None:
    if response is None:
        return None
    if isinstance(response, str):
        schema: dict[str, Any] = (
            {"type": "object"} if response.endswith("json") else {"type": "string"}
        )
        return {response: {"schema": schema}}
    return {"application/json": {"schema": {"$ref": REF.format(name=response.__name__)}}}


def build_document(
    routes: Sequence[Route], *, version: str, symbols: Sequence[str]
) -> dict[str, Any]:
    types: list[Any] = [s.ErrorBody]
    for route in routes:
        if route.body is not None:
            types.append(route.body)
        if isinstance(route.response, type):
            types.append(route.response)
    _, components = msgspec.json.schema_components(list(dict.fromkeys(types)), ref_template=REF)

    error = {"application/json": {"schema": {"$ref": REF.format(name="ErrorBody")}}}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        responses: dict[str, Any] = {}
        ok: dict[str, Any] = {"description": "Success" if route.status != 204 else "Done"}
        content = _content(route.response)
        if content:
            ok["content"] = content
        responses[str(route.status)] = ok
        errors = set(route.errors)
        if route.status_of is not None:
            # The status is chosen by the result; the same shape comes with either.
            responses["503"] = {"description": "Not healthy", "content": content}
            errors.discard(503)
        for status in sorted(errors):
            responses[str(status)] = {"description": _ERROR_TEXT[status], "content": error}
        operation: dict[str, Any] = {
            "operationId": route.operation_id,
            "summary": route.summary,
            "tags": [route.tag],
            "security": [{"bearerAuth": []}] if route.authenticated else [],
            "responses": responses,
        }
        description = route.description
        rule = range_rule(route.query) if route.validate_query else None
        if rule is not None:
            operation["x-range"] = rule
            description = f"{description} {_range_text(rule)}".strip()
        if description:
            operation["description"] = description
        parameters = []
        if route.path_params is not None:
            parameters += _parameters(route.path_params, symbols, "path")
        if route.validate_query:
            parameters += _parameters(route.query, symbols)
        if parameters:
            operation["parameters"] = parameters
        if route.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": REF.format(name=route.body.__name__)}}
                },
            }
        if route.admin:
            operation["x-roles"] = ["admin"]
        paths.setdefault(route.path, {})[route.method.lower()] = operation

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "arbengine",
            "version": version,
            "description": (
                "Funding rates, trade tape, liquidations, signals and paper trades of an "
                "arbengine deployment. Times of market events are epoch milliseconds UTC. "
                'Errors are always {"error": {"code", "message", "field"}}. Ranges are '
                "half-open: from ≤ t < to. Unknown or repeated query parameters are refused."
            ),
        },
        "tags": [
            {"name": name}
            for name in (
                "auth",
                "funding",
                "trades",
                "liquidations",
                "signals",
                "paper",
                "live",
                "admin",
                "system",
            )
        ]
        + [{"name": "page"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An access token from /api/login, /api/register or /api/refresh",
                }
            },
        },
    }
