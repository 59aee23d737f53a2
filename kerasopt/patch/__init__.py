"""``kerasopt.patch_keras()``: existing Keras code gets kerasopt's fused optimizers.

The convention is Intel's extension for scikit-learn (``patch_sklearn()`` /
``unpatch_sklearn()``). After ``patch_keras()``, for every optimizer both
libraries have (``names`` limits it), each of these gives kerasopt's class:

* ``keras.optimizers.Adam(...)`` (and ``tf.keras.optimizers.Adam``);
* ``keras.optimizers.get("adam")``, ``model.compile(optimizer="adam")``,
  ``keras.optimizers.deserialize``;
* ``keras.models.load_model`` of a file whose config names
  ``keras.optimizers.Adam``;

and ``model.save`` (``keras.optimizers.serialize``) writes kerasopt's class
under Keras's name, so Keras alone loads what a patched program saves.

Two places change, nothing else:

1. the class attributes of Keras's public optimizer modules
   (``keras.optimizers``, and ``keras._tf_keras.keras.optimizers`` behind
   ``tf.keras`` in legacy setups);
2. Keras's export registry (``keras.src.api_export``), both directions:
   ``"keras.optimizers.Adam"`` -> kerasopt.Adam (every string and saved config
   Keras resolves ends there: ``get`` and ``deserialize`` map ``"adam"`` to
   that name first) and kerasopt.Adam -> ``"keras.optimizers.Adam"`` (the name
   ``serialize`` writes).

``unpatch_keras()`` puts back exactly what was there. Names bound before the
patch (``from keras.optimizers import Adam`` run earlier, or an optimizer
already made) keep Keras's class: patch first, as with ``patch_sklearn()``.
kerasopt's classes derive from Keras's original classes whether patched or
not, so ``isinstance(opt, keras.optimizers.Adam)`` holds for either class.
See docs/drop-in.md.
"""

from __future__ import annotations

import contextlib
import importlib
import threading

from keras.src import api_export

from kerasopt.optimizers import ALL, AWAITING_KERNELS
from kerasopt.optimizers.fused import keras_counterpart

# Keras's public modules that export the optimizer classes by attribute.
# The second is tf.keras's copy of the API (TF_USE_LEGACY_KERAS setups); in
# Keras 3 mode tf.keras.optimizers is keras.optimizers itself.
API_MODULES = ("keras.optimizers", "keras._tf_keras.keras.optimizers")

_MISSING = object()
_lock = threading.Lock()
# Keras name (e.g. "Adam") -> [(restore function, what was there)], in patch order.
_patched: dict[str, list] = {}


def _replacements() -> dict:
    """{Keras's class name: kerasopt's class} for every class both have."""
    found = {}
    for cls in ALL + AWAITING_KERNELS:
        keras_class = keras_counterpart(cls)
        if keras_class is not None:
            found[keras_class.__name__] = cls
    return found


def patchable_names() -> tuple:
    """The Keras optimizer names ``patch_keras()`` replaces, e.g. ``"Adam"``."""
    return tuple(sorted(_replacements()))


def _resolve(names) -> list:
    """Keras class names for `names` (None: all), case-insensitive; raises
    ValueError naming every unknown one before anything changes."""
    known = patchable_names()
    if names is None:
        return list(known)
    if isinstance(names, str):
        names = [names]
    by_lower = {name.lower(): name for name in known}
    resolved, unknown = [], []
    for name in names:
        if not isinstance(name, str) or name.lower() not in by_lower:
            unknown.append(name)
        elif by_lower[name.lower()] not in resolved:
            resolved.append(by_lower[name.lower()])
    if unknown:
        raise ValueError(
            f"kerasopt.patch_keras: no optimizer of both Keras and kerasopt is named "
            f"{', '.join(map(repr, unknown))}; the names are {', '.join(known)}")
    return resolved


def _api_modules() -> list:
    modules = []
    for module_name in API_MODULES:
        try:
            modules.append(importlib.import_module(module_name))
        except ImportError:
            continue
    return modules


def _set_attribute(module, name, value):
    """Sets module.name; returns how to undo it."""
    before = vars(module).get(name, _MISSING)
    setattr(module, name, value)

    def restore():
        if vars(module).get(name, _MISSING) is value:  # still ours
            if before is _MISSING:
                delattr(module, name)
            else:
                setattr(module, name, before)
    return restore


def _set_item(mapping, key, value):
    """Sets mapping[key]; returns how to undo it."""
    before = mapping.get(key, _MISSING)
    mapping[key] = value

    def restore():
        if mapping.get(key, _MISSING) is value:  # still ours
            if before is _MISSING:
                del mapping[key]
            else:
                mapping[key] = before
    return restore


def _patch_one(name: str, cls) -> list:
    """Replaces Keras's `name` by `cls` (see the module docstring); the undo list."""
    original = keras_counterpart(cls)
    export_name = api_export.get_name_from_symbol(original)
    undo = []
    for module in _api_modules():
        if vars(module).get(name) is original:
            undo.append(_set_attribute(module, name, cls))
    if export_name is not None:
        undo.append(_set_item(api_export.REGISTERED_NAMES_TO_OBJS, export_name, cls))
        undo.append(_set_item(api_export.REGISTERED_OBJS_TO_NAMES, cls, export_name))
    return undo


def patch_keras(names=None) -> None:
    """Makes Keras use kerasopt's fused optimizers (see the module docstring).

    Args:
        names: Keras optimizer names to patch (``"adam"``, ``"AdamW"``, ...; a
            string or a list; case-insensitive), or None for all of
            :func:`patchable_names`. An unknown name raises ValueError and
            nothing is patched.

    Patching a name twice is harmless; ``patch_keras(["sgd"])`` after
    ``patch_keras(["adam"])`` patches both.
    """
    resolved = _resolve(names)
    replacements = _replacements()
    with _lock:
        for name in resolved:
            if name not in _patched:
                _patched[name] = _patch_one(name, replacements[name])


def unpatch_keras(names=None) -> None:
    """Restores what :func:`patch_keras` replaced (``names``: some of them;
    None: all). Unpatching what is not patched is harmless."""
    resolved = _resolve(names)
    with _lock:
        for name in resolved:
            for restore in reversed(_patched.pop(name, [])):
                restore()


def keras_is_patched(name=None) -> bool:
    """True when `name` (None: any optimizer) is patched."""
    if name is None:
        return bool(_patched)
    return _resolve(name)[0] in _patched


def patched_names() -> tuple:
    """The Keras optimizer names patched now."""
    return tuple(sorted(_patched))


@contextlib.contextmanager
def patched(names=None):
    """``with kerasopt.patched(): ...`` patches for the block and then unpatches
    what it patched, leaving names patched before it as they were. For
    example, a file saved from ``kerasopt.Adam()`` names Keras's class (so
    Keras alone loads it), and loads as ``kerasopt.Adam`` inside this block."""
    resolved = _resolve(names)
    with _lock:
        added = [name for name in resolved if name not in _patched]
    patch_keras(added)
    try:
        yield
    finally:
        unpatch_keras(added)
