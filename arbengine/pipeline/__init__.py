"""Signals and paper trading in one event-time order: the live engine and the backtester.

The synchronous core (``signal_pipeline.py``) combines the signal engine and the paper
book; the daemon's engine service and ``arbengine backtest`` both drive it,
which is what makes their results identical.
"""
