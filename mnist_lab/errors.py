class LabError(Exception):
    """An expected mistake (bad input, missing data): the CLI prints the message, not a traceback."""
