"""Training (torch): models, augmentation, the torch dataset over scene folders, the loop and ONNX export.

Everything here needs the ``train`` extra; ``minewatch.datasets`` and ``minewatch.infer`` never import it.
"""
