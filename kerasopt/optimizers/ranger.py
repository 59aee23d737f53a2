"""kerasopt.Ranger: RAdam inside Lookahead, as one named optimizer.

No math of its own: the inner step is kerasopt.RAdam (cc/kernels/radam.h), the
synchronization is Lookahead's (cc/kernels/lookahead.h).
"""

import keras

from kerasopt.optimizers.lookahead import Lookahead
from kerasopt.optimizers.radam import RAdam


def _learning_rate_config(optimizer):
    """The inner optimizer's learning rate as Keras's get_config writes it."""
    rate = optimizer._learning_rate
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        return keras.optimizers.schedules.serialize(rate)
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


@keras.saving.register_keras_serializable(package="kerasopt")
class Ranger(Lookahead):
    """Ranger (L. Wright, 2019): RAdam (Liu et al. 2020) wrapped in Lookahead
    (Zhang et al. 2019).

    ``kerasopt.Ranger(...)`` is ``kerasopt.Lookahead(kerasopt.RAdam(...),
    sync_period, slow_step_size)`` with its own name and a flat config. The
    defaults are those of the original Ranger (beta_1 0.95, epsilon 1e-5,
    k = 6, alpha = 0.5); RAdam's rectification threshold is the paper's
    (rho_t > 4; the original Ranger code used 5). With ``sync_period=1`` and
    ``slow_step_size=1`` Ranger is exactly RAdam.

    Args:
        learning_rate, beta_1, beta_2, epsilon: RAdam's (see ``kerasopt.RAdam``).
        sync_period: Lookahead's k, an integer >= 1. Defaults to 6.
        slow_step_size: Lookahead's alpha, in [0, 1]. Defaults to 0.5.
        weight_decay: RAdam's decoupled weight decay (Keras's). Defaults to None.
        nonfinite: RAdam's ``nonfinite`` ("propagate", "skip" or "raise"); a
            step RAdam skips is skipped by Lookahead too. Defaults to "propagate".
        name: the optimizer's name.
    """

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.95,
        beta_2=0.999,
        epsilon=1e-5,
        sync_period=6,
        slow_step_size=0.5,
        weight_decay=None,
        name=None,
        nonfinite="propagate",
    ):
        inner = RAdam(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                      epsilon=epsilon, weight_decay=weight_decay, nonfinite=nonfinite)
        super().__init__(inner, sync_period=sync_period, slow_step_size=slow_step_size,
                         name=name)

    def get_config(self):
        inner = self.inner_optimizer
        return {
            "name": self.name,
            "learning_rate": _learning_rate_config(inner),
            "beta_1": inner.beta_1,
            "beta_2": inner.beta_2,
            "epsilon": inner.epsilon,
            "sync_period": self.sync_period,
            "slow_step_size": self.slow_step_size,
            "weight_decay": inner.weight_decay,
            # Only when set, as kerasopt's optimizers do.
            **({"nonfinite": inner.nonfinite} if inner.nonfinite != "propagate" else {}),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = keras.optimizers.schedules.deserialize(
                config["learning_rate"], custom_objects=custom_objects)
        return cls(**config)
