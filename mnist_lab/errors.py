class LabError(Exception):
    """An expected mistake (bad input, missing data): the CLI prints the message, not a traceback."""

    def _render_traceback_(self):
        # IPython shows an exception that has this method as the lines it returns (InteractiveShell.showtraceback):
        # in a notebook, too, an expected mistake is one line, not a traceback into the package.
        return [f"{type(self).__name__}: {self}"]
