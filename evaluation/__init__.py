"""Measuring a trained Twin-GAN: the metrics the `evaluate` stage (flows/evaluate.py) reports.

- `fid.py`: feature statistics, the Fréchet distance and the kernel (KID) estimator, on any features.
- `inception.py`: the Inception-v3 feature extractor those metrics are defined with, from a file named in params.
- `images.py`: validation images read through the training loader's readers, translated and reconstructed.
- `detect.py`: a face detector run over many images (upscaled first), in worker processes.
- `pose.py`: head roll and yaw of a photographed face (dlib landmarks) and of a drawn one (AnimeFace's).
- `agreement.py`: how well the outputs keep the input's pose and show the hair colour that was asked for.

A metric that cannot be computed on the data at hand is reported as null with the reason, never as a number.
"""
