"""Synthetic multi-person clips rendered from Anny bodies (demo clip and test fixtures)."""
