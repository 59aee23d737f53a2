"""kerasopt.viz: watch the real kerasopt optimizers work.

* :mod:`~kerasopt.viz.surfaces`: two-parameter test surfaces (f0–f5,
  Rosenbrock, Beale, a saddle) with seeded coarse and fine noise;
* :mod:`~kerasopt.viz.trajectories`: kerasopt optimizers (the fused kernels)
  stepping over them;
* :mod:`~kerasopt.viz.plots`: 3-D surface, contour and loss-vs-step figures,
  PNG and animated GIF (matplotlib, an optional extra: ``pip install
  kerasopt[viz]``);
* :mod:`~kerasopt.viz.quadratic`: gradient descent on ``xᵀQx``, theory beside
  measurement;
* :mod:`~kerasopt.viz.race`: the MNIST convergence race.

Command line: ``python -m kerasopt.viz {surface,sweep,quadratic,race,gallery} --help``.
Submodules import TensorFlow and matplotlib only when used.
"""
