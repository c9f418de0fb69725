"""Training datasets: quality measures, near-duplicate removal, splits and sampling weights."""
