"""The table contract: every Lance table's Arrow schema and the documentation rendered from it."""
