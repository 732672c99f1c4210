"""Signal engine: features, strategies and scoring (synchronous cores)."""
