"""Measurement engine: clocks, leaf hooks and the warm-up/trial runner."""
