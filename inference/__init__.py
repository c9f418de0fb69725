"""Using a trained model file: translate photos (find, crop, translate, paste back), export one direction
to ONNX or TorchScript, embed crops and search neighbours across domains, and the local web page. It
imports the model file and networks from training/, never the reverse."""
