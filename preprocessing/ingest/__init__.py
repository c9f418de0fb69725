"""Ingest: list a source, check and store every image by content, write the raw manifest."""
