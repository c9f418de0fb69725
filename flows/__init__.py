"""Prefect flows: the per-item work of each stage, and the end-to-end rebuild."""
