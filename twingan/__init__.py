"""Twin-GAN pipeline: configuration, the command line, and the files every stage shares."""
