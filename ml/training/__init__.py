"""Training, export and evaluation of SlickNet (torch for train/export; evaluation runs on ONNX Runtime)."""
