"""Renderers: pure functions from results to strings or rich renderables."""
