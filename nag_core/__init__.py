"""Pure computation for NAG data selection.

Nothing in this package imports Dagster: every function here can be called from a
notebook, a Spark or Ray task, or the Dagster assets in ``nag_assets``, which are a
thin wiring layer over it.
"""

__version__ = "0.1.0"
