"""Alerts: what happened, told to people through a Discord webhook or any JSON webhook.

The daemon's sources (fired signals, ``live_events`` rows, tape holes, start and stop,
a component given up) become ``Alert`` values (``alerts.py``), which ``Notifier.publish``
queues without ever waiting; a sender per sink drains its queue in batches and delivers
them within the receiver's limits (``discord.py``, ``json_webhook.py``, ``pacing.py``).
"""
