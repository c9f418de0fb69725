"""What the tests build: params files, datasets, model files, Caffe nets, images and repository copies.

Test modules import their helpers from here, never from one another. This package imports nothing on its
own, so conftest.py can import tests.builders.repo before anything loads Prefect.
"""
