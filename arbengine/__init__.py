"""arbengine: a trading engine for Binance USD-M perpetual futures."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("arbengine")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
