"""Latency lookup tables: search spaces, the builder and LatencyTable."""
