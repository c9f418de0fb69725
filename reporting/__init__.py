"""What a run produced, for a person: `twingan report` reads the stages' metrics and pictures after any
`dvc repro` and prints a short table, writes one self-contained HTML page, and draws the README's picture.
It reads outputs only, so it never changes what a stage wrote."""
