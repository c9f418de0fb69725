"""One module per `dvc.yaml` stage, named as the stage and as its `twingan` command: it reads its params
section, runs the work (as a Prefect flow where the work is per item) and writes the stage's outputs.
Stage modules never import each other; `rebuild.py` is the end-to-end Prefect flow around `dvc repro`."""
