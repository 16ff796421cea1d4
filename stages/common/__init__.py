"""Helpers every layer uses: the user-facing error, atomic writes, hashing, JSON records."""
