"""Deterministic row ids (kept free of heavy imports: stages load this inside Ray workers)."""

import uuid

ROW_NAMESPACE = uuid.UUID("6f1c2d1e-8a43-4c55-9a3e-3b6f3f4f2a10")


def row_id(*parts: str) -> str:
    """Deterministic row key from a row's natural key (uuid5)."""
    return str(uuid.uuid5(ROW_NAMESPACE, "\x1f".join(parts)))
