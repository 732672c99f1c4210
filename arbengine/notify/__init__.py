"""Notifications (Discord webhook)."""
