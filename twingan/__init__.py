"""The `twingan` command line: a few lines per command, each calling the stage module or the use of the
model it names; and `twingan fetch` for released model files."""
