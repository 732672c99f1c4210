"""A simulated Binance USD-M futures exchange speaking the real protocol over real sockets.

Collectors, the executor and the risk guard are tested end to end against it,
and a new user can watch the whole system work offline (``arbengine sim``).
Layout: synchronous cores (``market``, ``replay``, ``trade_history``, ``retention``,
``account`` with ``order_params``, ``margin``, ``account_wire`` and ``account_records``,
``market_summaries`` (trades, klines, depth, 24 h ticker derived from the tape),
``leverage_brackets``, ``limits``, ``faults``, ``auth``) and thin aiohttp shells
(``server``, ``rest``, ``wshub``, ``control``). Entry points: ``SimServer`` /
``SimConfig`` (embedding), ``cli`` (``arbengine sim``); its benchmark is
``arbengine.benchmarks.sim_bench``.

``SimServer`` and ``SimConfig`` are imported lazily, so importing a core (say
``arbengine.sim.market_model`` in a backtest) does not pull in aiohttp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arbengine.sim.server import SimConfig, SimServer

__all__ = ["SimConfig", "SimServer"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from arbengine.sim import server

        return getattr(server, name)
    raise AttributeError(f"module 'arbengine.sim' has no attribute {name!r}")
