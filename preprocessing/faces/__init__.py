"""Faces: detection, alignment and the crops of every domain."""
