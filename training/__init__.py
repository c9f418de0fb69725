"""The Twin-GAN: networks, losses, the training loop, data loading, inference. Built in issues 6-8."""
