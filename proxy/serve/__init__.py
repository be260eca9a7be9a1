"""Serving: embedding mitmproxy, the fast path for tunnels, workers and the admin listener."""
