"""Optimizer specs: ``"adam:learning_rate=0.1,beta_1=0.8"`` → a fresh kerasopt optimizer.

The names come from :data:`kerasopt.optimizers.ALL` (case-insensitive class
names), so an optimizer added to kerasopt is usable here without changes.
Values are Python literals (``0.1``, ``1e-3``, ``True``, ``(0.9, 0.99)``);
anything else is taken as a string. An integer ``learning_rate`` becomes a
float (Keras rejects ints there).
"""

from __future__ import annotations

import ast
import dataclasses


def available() -> dict:
    """``{lower-case class name: class}`` for every optimizer kerasopt ships."""
    from kerasopt.optimizers import ALL

    return {cls.__name__.lower(): cls for cls in ALL}


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer class and the keyword arguments to build it with."""

    cls: type
    kwargs: tuple = ()  # ((name, value), ...) so the spec is hashable
    label_override: str | None = None

    @property
    def label(self) -> str:
        if self.label_override:
            return self.label_override
        if not self.kwargs:
            return self.cls.__name__
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs)
        return f"{self.cls.__name__}({args})"

    def build(self):
        """A new optimizer instance (every run needs its own slots)."""
        try:
            return self.cls(**dict(self.kwargs))
        except (TypeError, ValueError) as err:
            raise ValueError(f"optimizer spec {self.label!r}: {err}") from err

    def with_kwargs(self, **updates) -> "OptimizerSpec":
        merged = dict(self.kwargs)
        merged.update(updates)
        return OptimizerSpec(self.cls, tuple(merged.items()))


def parse(text: str) -> OptimizerSpec:
    """Parses ``NAME[:KEY=VALUE[,KEY=VALUE...]]``, e.g. ``sgd:learning_rate=0.1,momentum=0.9``."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"optimizer spec must be a non-empty string like 'adam:learning_rate=0.1', got {text!r}")
    name, _, rest = text.strip().partition(":")
    classes = available()
    cls = classes.get(name.strip().lower())
    if cls is None:
        raise ValueError(
            f"optimizer spec {text!r}: unknown optimizer {name!r}; "
            f"choose from {', '.join(sorted(classes))}")
    kwargs = []
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip().isidentifier():
            raise ValueError(f"optimizer spec {text!r}: expected KEY=VALUE, got {item!r}")
        key, value = key.strip(), _literal(value.strip())
        if key == "learning_rate" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # Keras takes a float (or a schedule), not the int 10
        kwargs.append((key, value))
    spec = OptimizerSpec(cls, tuple(kwargs))
    spec.build()  # fail now, naming the spec, rather than in the middle of a run
    return spec


def effective_config(spec: OptimizerSpec) -> dict:
    """The built optimizer's config without its name: equal configs run identically."""
    config = dict(spec.build().get_config())
    config.pop("name", None)
    return {"class": spec.cls.__name__, **config}


def every_optimizer(**kwargs) -> list:
    """A spec per kerasopt optimizer with ``kwargs`` (e.g. a learning rate),
    leaving out classes that cannot be built that way (such as wrappers that
    need another optimizer)."""
    out = []
    for cls in available().values():
        spec = OptimizerSpec(cls, tuple(kwargs.items()))
        try:
            spec.build()
        except ValueError:
            continue
        out.append(spec)
    return out
