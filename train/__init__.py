"""Training (torch): models, augmentation, the torch dataset over scene folders, the loop and ONNX export.

Everything here needs the ``train`` extra; ``minewatch.datasets`` and ``minewatch.infer`` never import it.
"""

import os

# OpenMP threads that spin while they wait collapse when anything else wants a core: on this project's
# 2-core box, a 2-thread training step took 10.7 s next to other work instead of 0.84 s with passive waits
# (BENCHMARKS.md, "make model"). Set before torch loads its OpenMP runtime; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
