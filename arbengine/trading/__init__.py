"""Paper trader, live executor, risk guard: synchronous cores with thin services."""
