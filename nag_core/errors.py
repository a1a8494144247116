"""One exception type for problems a user can fix.

Every message names the file, row or field at fault and says what to do, so the CLI
can print it without a traceback and a Dagster run shows it verbatim.
"""


class NagInputError(ValueError):
    """Bad user input: a shard, target, model directory or setting that cannot be used."""
