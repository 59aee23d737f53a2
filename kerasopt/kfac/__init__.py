"""K-FAC (Martens & Grosse 2015) for Dense layers: the optimizer and the model
wrapper that records the statistics it needs. See docs/second-order.md."""

from kerasopt.kfac.model import KFACModel, dense_layers
from kerasopt.kfac.optimizer import KFAC

__all__ = ["KFAC", "KFACModel", "dense_layers"]
