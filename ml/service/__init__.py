"""HTTP microservice that segments oil slicks in SAR images with the ONNX model (no torch)."""
