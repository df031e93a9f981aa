"""ntkjax: empirical-NTK metrics for neural architecture search, in JAX."""

__version__ = "0.1.0"
