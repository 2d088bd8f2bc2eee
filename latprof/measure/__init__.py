"""Measurement engine: clocks, leaf hooks and the warm-up/trial runner."""

ROOT_NAME = "(model)"  # the name of the model itself among its modules
