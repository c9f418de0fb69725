"""Tagging of face crops: illust2vec, AnimeFace colours, human hair colour, and the shared vocabulary."""
