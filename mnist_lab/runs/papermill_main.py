"""`python -m mnist_lab.runs.papermill_main ARGS`: papermill's own command line, started about 2.7 s sooner.

papermill imports nbformat, which imports jsonschema; where rfc3987-syntax is installed (Jupyter's server brings
it), jsonschema compiles an IRI grammar at import for format checks that nbformat, nbclient and papermill never
ask for. Every notebook the runner starts paid for it before its kernel started; hidden from
jsonschema, the import fails and jsonschema goes on without those two format checks, as it does wherever the
package is not installed.
"""
import sys

sys.modules.setdefault("rfc3987_syntax", None)  # `from rfc3987_syntax import ...` then raises ImportError

from papermill.cli import papermill  # noqa: E402

if __name__ == "__main__":
    papermill(prog_name="papermill")
