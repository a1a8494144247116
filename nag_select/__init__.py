"""The ``nag-select`` command line: demo, run, status, export-features, query, ui."""
