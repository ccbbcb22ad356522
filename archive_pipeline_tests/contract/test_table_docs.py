"""docs/tables.md's column tables are the table contract (schemas.py)."""

from archive_pipeline.contract.table_docs import update_doc
from archive_pipeline_tests.helpers import REPO


def test_docs_tables_md_is_current():
    doc = (REPO / "docs/tables.md").read_text()
    assert update_doc(doc) == doc, "stale: run `archive-pipeline tables --write docs/tables.md`"
