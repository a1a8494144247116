"""Dagster wiring: one module per stage of the graph, each a thin layer over ``nag_core``."""
