"""Training the Twin-GAN: networks, losses, the loop, the data loader, checkpoints and the model file.
Using a model lives in inference/, measuring it in evaluation/."""
