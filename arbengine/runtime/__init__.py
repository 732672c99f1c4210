"""Generic runtime: supervision, channels, OS signals, clocks. No domain knowledge."""
