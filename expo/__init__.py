"""EXPO reproducibility suite: the shared JAX core."""
