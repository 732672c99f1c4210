"""Exchange clients: Binance REST (signing, weights, bans), websocket streams, Coinbase ticker."""
