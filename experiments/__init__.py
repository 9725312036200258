"""Experiment grids and the launcher that runs them."""
