"""A simulated Binance USD-M exchange speaking the real protocol."""
