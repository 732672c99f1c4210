"""Market data collectors: the trade tape with gap repair, indicators, liquidations."""
