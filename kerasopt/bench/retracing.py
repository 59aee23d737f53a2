"""Leaves out TensorFlow's retracing warning where it is a false alarm.

TensorFlow counts a ``tf.function``'s traces by the code of the Python
function it wraps, not by the ``tf.function``. A benchmark makes a new
``tf.function`` for every column and case from one ``def step``, and
``model.fit`` a new train function for every model, each traced once; after
five of them TensorFlow warns that "calls ... triggered tf.function
retracing", which here is not true.
"""

import logging

_MESSAGE = "triggered tf.function retracing"


class _FalseAlarm(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return _MESSAGE not in record.getMessage()


def hide_false_alarms() -> None:
    """Filters the warning out of the ``tensorflow`` logger (once per process)."""
    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _FalseAlarm) for f in logger.filters):
        logger.addFilter(_FalseAlarm())
