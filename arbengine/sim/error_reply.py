"""The simulated exchange's error reply: what every refused request raises."""

from __future__ import annotations

from typing import Any


class SimApiError(Exception):
    """A Binance error reply: ``{"code": code, "msg": msg}`` with an HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg}


def mandatory(name: str) -> SimApiError:
    return SimApiError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )
