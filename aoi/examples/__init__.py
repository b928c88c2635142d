"""Example portfolio files (package data)."""
