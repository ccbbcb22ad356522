"""docs/tables.md's column tables, rendered from the table contract in `schemas.py`
(`archive-pipeline tables --write docs/tables.md`; a test keeps the document current)."""

from __future__ import annotations

from archive_pipeline.contract.schemas import TABLES, describe


def render_markdown() -> str:
    """Render the column tables of every table (the generated part of docs/tables.md)."""
    lines = []
    for spec in TABLES.values():
        scope = ", ".join(f"`{c}`" for c in spec.partition_scope)
        lines += [f"### `{spec.name}`", "", f"One row per {spec.row}. Replaced per {scope}.", ""]
        lines += ["| column | type | nullable | meaning |", "|---|---|---|---|"]
        for field in spec.schema:
            nullable = "yes" if field.nullable else "no"
            kind = (
                "fixed_size_list<float>[dim]" if field.name in spec.vector_columns else field.type
            )
            lines.append(f"| `{field.name}` | `{kind}` | {nullable} | {describe(field)} |")
        lines.append("")
    return "\n".join(lines)


BEGIN_MARK = "<!-- BEGIN GENERATED COLUMNS (archive-pipeline tables --write docs/tables.md) -->"
END_MARK = "<!-- END GENERATED COLUMNS -->"


def update_doc(text: str) -> str:
    """Replace the generated section of a markdown document with the current column tables."""
    head, rest = text.split(BEGIN_MARK, 1)
    _, tail = rest.split(END_MARK, 1)
    return f"{head}{BEGIN_MARK}\n\n{render_markdown()}\n{END_MARK}{tail}"
