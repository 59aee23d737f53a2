"""K-FAC (Martens & Grosse 2015) for Dense layers and KFC (Grosse & Martens 2016)
for Conv2D layers: the optimizer and the model wrapper that records the statistics
it needs. See docs/second-order.md."""

from kerasopt.kfac.layers import first_order_layers, kfac_layers
from kerasopt.kfac.model import KFACModel
from kerasopt.kfac.optimizer import KFAC

__all__ = ["KFAC", "KFACModel", "first_order_layers", "kfac_layers"]
