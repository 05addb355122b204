"""`tslrec report`: a self-contained HTML page (and PNG figures) for a finished TSLRec run."""

from tslrec.reporting.html import write_report

__all__ = ["write_report"]
