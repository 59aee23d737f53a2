"""kerasopt's benchmarks, each timing kerasopt against Keras side by side in one run.

* ``python -m kerasopt.bench``: one optimizer step on every case (``steps.py``;
  torch's columns run in a child process, ``torch_child.py``), with
  ``--fit`` for ``model.fit`` steps (``fit.py``);
* ``python -m kerasopt.bench.sparse``: one sparse (embedding) step;
* ``python -m kerasopt.bench.slot_dtype``: bfloat16 Adam with 16-bit vs float32 slots;
* ``python -m kerasopt.bench.second_order``: the per-step cost of preconditioning.

``bandwidth.py`` (the CPU triad) and ``device.py`` (GPU copy bandwidth) give
the memory limits the times are compared with.
"""
