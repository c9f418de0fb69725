"""The ground floor every other package stands on, importing nothing of the project: params and their
validation, atomic writes, Parquet I/O and every schema, the process, device and runtime rules, and where
each stage's outputs live."""
