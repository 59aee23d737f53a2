"""The benchmarks leave out TensorFlow's false retracing warning (and only it)."""

import logging

import pytest
import tensorflow as tf

from kerasopt.bench import retracing


def _steps_traced_once_each(count):
    # As a benchmark does: a new tf.function per column, all from one `def`.
    def make(i):
        def step():
            return tf.constant(i) + 1
        return tf.function(step)

    for i in range(count):
        make(i)()


@pytest.fixture
def tf_log():
    # Earlier tests in the process may have run a benchmark's main, which
    # filters the warning for the rest of the process: start without that.
    logger = logging.getLogger("tensorflow")
    saved, saved_level = list(logger.filters), logger.level
    logger.filters[:] = [f for f in saved if not isinstance(f, retracing._FalseAlarm)]
    logger.setLevel(logging.WARNING)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)
    logger.filters[:] = saved
    logger.setLevel(saved_level)


def test_tensorflow_warns_without_the_filter(tf_log):
    _steps_traced_once_each(7)
    assert any("triggered tf.function retracing" in r.getMessage() for r in tf_log)


def test_the_filter_leaves_out_that_warning_only(tf_log):
    retracing.hide_false_alarms()
    retracing.hide_false_alarms()  # once per process
    assert sum(isinstance(f, retracing._FalseAlarm) for f in logging.getLogger("tensorflow").filters) == 1
    _steps_traced_once_each(7)
    logging.getLogger("tensorflow").warning("another warning")
    assert [r.getMessage() for r in tf_log] == ["another warning"]
