"""JSON Schemas of the input formats (package data)."""
