"""Preprocessing stages: ingest of photo folders and archives (and, next, faces, tags, datasets)."""
