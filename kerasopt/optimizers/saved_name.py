"""The name a kerasopt optimizer is saved under: Keras's, unless it uses
kerasopt's own options.

A model compiled with ``kerasopt.Adam()`` and saved must load where only Keras
is installed. Keras writes an object under the public name its export registry
gives the object's class, and reads a file naming a Keras class only when no
other ``registered_name`` is in it. So each kerasopt class Keras also has is
entered in that registry under Keras's name (``kerasopt.Adam`` ->
``"keras.optimizers.Adam"``), in that direction only: reading the name still
gives Keras's class unless ``kerasopt.patch_keras()`` is in force. A file saved
from ``kerasopt.Adam()`` therefore loads as Keras's ``Adam`` with Keras alone or
with kerasopt unpatched, and as ``kerasopt.Adam`` under ``patch_keras()`` (or
``with kerasopt.patched():``).

An optimizer made with one of kerasopt's own options (``lazy=True``,
``nonfinite="skip"``, ``slot_dtype``, an argument Keras's class lacks, or one
of the class's ``keyword_options``)
cannot run on Keras's class, so it is an instance of a private subclass, also
named ``Adam``, saved as ``"kerasopt>Adam"``: Keras alone refuses that name,
and kerasopt loads it as ``kerasopt.Adam`` with the option.
"""

from __future__ import annotations

import contextlib
import inspect

from keras.src import api_export
from keras.src.optimizers.base_optimizer import BaseOptimizer
from keras.src.saving import object_registration

# FusedOptimizer's own keyword arguments and their defaults; checked against
# FusedOptimizer.__init__ by tests/test_drop_in_files.py.
KERASOPT_OPTIONS = {"lazy": False, "nonfinite": "propagate", "slot_dtype": None}

_WITH_OPTIONS = "_with_kerasopt_options"


def _parameters(function) -> dict:
    return {name: p for name, p in inspect.signature(function).parameters.items()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and name != "self"}


def _is_default(value, default) -> bool:
    if value is default:
        return True
    plain = (bool, int, float, str, type(None))
    return isinstance(value, plain) and isinstance(default, plain) and value == default


def register(cls, keras_class) -> bool:
    """Enters kerasopt class `cls` under `keras_class`'s public name; False
    (nothing done) for a class outside kerasopt (a user's subclass keeps its
    own name) or a Keras class without one."""
    export_name = api_export.get_name_from_symbol(keras_class)
    if not cls.__module__.startswith("kerasopt.") or export_name is None \
            or _WITH_OPTIONS in cls.__dict__:
        return False
    api_export.REGISTERED_OBJS_TO_NAMES[cls] = export_name
    setattr(cls, _WITH_OPTIONS, None)  # made at first use, after @register_keras_serializable
    cls._keras_class = keras_class
    return True


def with_options_class(cls):
    """The private subclass of registered class `cls` for instances with
    kerasopt's options (made once), saved under `cls`'s registered name."""
    made = cls.__dict__[_WITH_OPTIONS]
    if made is None:
        keras_parameters = set(_parameters(cls._keras_class.__init__)) | \
            set(_parameters(BaseOptimizer.__init__))
        made = type(cls)(cls.__name__, (cls,), {
            "__module__": cls.__module__, "__qualname__": cls.__qualname__,
            "__doc__": cls.__doc__, _WITH_OPTIONS: False,
            # cls's arguments that Keras's class lacks, with their defaults.
            "_kerasopt_arguments": {name: p.default for name, p in _parameters(cls.__init__).items()
                                    if name not in keras_parameters},
        })
        object_registration.GLOBAL_CUSTOM_NAMES[made] = object_registration.get_registered_name(cls)
        setattr(cls, _WITH_OPTIONS, made)
    return made


def public_class(cls):
    """kerasopt's public class (``kerasopt.Adam``) for `cls` or its private subclass."""
    return cls.__mro__[1] if cls.__dict__.get(_WITH_OPTIONS) is False else cls


def class_for(cls, args, kwargs):
    """The class ``cls(*args, **kwargs)`` makes: `cls`, or its private
    subclass when the arguments set one of kerasopt's own options."""
    if cls.__dict__.get(_WITH_OPTIONS, False) is False:
        return cls  # not registered (a user's subclass), or already the private one
    subclass = with_options_class(cls)
    try:
        bound = inspect.signature(cls.__init__).bind(None, *args, **kwargs)
    except TypeError:
        return cls  # its __init__ raises the error
    given = dict(bound.arguments)
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        if parameter.kind is parameter.VAR_KEYWORD:
            given.update(given.pop(name, {}))
    options = {**KERASOPT_OPTIONS, **cls.keyword_options, **subclass._kerasopt_arguments}
    if all(_is_default(given[name], default) for name, default in options.items() if name in given):
        return cls
    return subclass


@contextlib.contextmanager
def under_kerasopts_name(optimizer):
    """Within the block, `optimizer` is written under kerasopt's registered
    name even with Keras's options only: for what only kerasopt reads anyway
    (a pickle; the inner optimizer of kerasopt's Lookahead), so that it comes
    back as kerasopt's class."""
    own = type(optimizer)
    public = public_class(own)
    if public.__dict__.get(_WITH_OPTIONS, False) is False:
        yield  # a class Keras lacks, or a user's: written under its own name
        return
    optimizer.__class__ = with_options_class(public)
    try:
        yield
    finally:
        optimizer.__class__ = own
