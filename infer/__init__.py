"""Scanning and its outputs: predictors, tile scores, candidate sites, writers, quicklooks and evaluation.

Torch-free: field laptops scan with an ONNX model; torch is imported only inside the torch predictor.
"""
