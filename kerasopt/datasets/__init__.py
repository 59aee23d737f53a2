"""Datasets for kerasopt's examples and tests (optional extras, loaded lazily).

``load_mnist`` returns NumPy arrays; see its docstring for the data sources
and how to install them (no dataset package is a kerasopt dependency).
"""

from kerasopt.datasets.mnist import load_mnist

__all__ = ["load_mnist"]
