"""Train examples/yinyang.snn on the Yin-Yang data set with exact gradients through the spike queues.

The network (5 input spike times -> 120 LIF -> 3 leaky integrators) runs on the generated C
kernels; ``model.as_jax`` turns a batch of simulations into a JAX function whose gradient is the
C adjoint (EventProp through the heap and fifo queues), so the training loop is plain JAX + optax.
Loss: cross-entropy of the readouts' voltage integrated over the trial (or its maximum, ``--loss
max``); weights and delays of both projections are trained (declared ``trainable`` in the model).

    python examples/train_yinyang.py [--epochs 40] [--batch 32] [--target c] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import qgen
from qgen.datasets import yinyang
from qgen.runtime.jax_bridge import pad_inputs

jax.config.update("jax_enable_x64", True)

MODEL = Path(__file__).with_name("yinyang.snn")


def encode(points: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Time-to-first-spike code of a batch of points: (times, ids), each (B, 5). Göltz et al.'s
    code is in units of the synaptic time constant: ``scale`` is that constant in ms."""
    times = yinyang.spike_times(points, t_early=0.15 * scale, t_late=2.0 * scale, bias=0.9 * scale)
    return pad_inputs([(t, np.arange(5)) for t in times])


def logits_of(observables: dict, loss: str) -> jnp.ndarray:
    """The readouts' voltage integrated over the trial (``sum``, as a mean) or its maximum (``max``)."""
    v = observables["out.v"]  # (B, T, 3)
    return jnp.mean(v, axis=1) if loss == "sum" else jnp.max(v, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-3, help="initial learning rate (cosine decay)")
    parser.add_argument("--duration", type=float, default=30.0, help="ms per trial")
    parser.add_argument("--time-scale", type=float, default=5.0, help="ms per unit of the input code (tau_s)")
    parser.add_argument("--target", default="c", choices=["c", "reference"])
    parser.add_argument("--train-size", type=int, default=5000)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--loss", default="sum", choices=["sum", "max"],
                        help="cross-entropy of the integrated (sum) or the maximum readout voltage")
    parser.add_argument("--clip", type=float, default=1.0, help="clip the gradient's global norm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the accuracy per epoch and the timings here")
    args = parser.parse_args()

    x_train, y_train = (a[:args.train_size] for a in yinyang.split("train"))
    x_test, y_test = (a[:args.test_size] for a in yinyang.split("test"))
    model = qgen.load(MODEL, target=args.target)
    fn, params = model.as_jax(args.duration, batch=args.batch, seed=args.seed, observables=["out.v"])
    params = {k: jnp.asarray(v) for k, v in params.items()}
    dt = model.model.network.dt

    def loss_fn(p, inputs, labels):
        logits = logits_of(fn(p, inputs), args.loss)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), logits

    @jax.jit
    def train_step(p, state, inputs, labels):
        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, inputs, labels)
        updates, state = optimiser.update(grads, state, p)
        p = optax.apply_updates(p, updates)
        p = {k: jnp.maximum(v, dt) if k.endswith(".delay") else v for k, v in p.items()}  # delays stay >= dt
        return p, state, loss, jnp.mean(jnp.argmax(logits, -1) == labels)

    @jax.jit
    def predict(p, inputs):
        return jnp.argmax(logits_of(fn(p, inputs), args.loss), -1)

    def accuracy(p, points, labels) -> float:
        """On every point: the last batch is filled up with copies of the first points, not counted."""
        correct = 0
        for start in range(0, len(points), args.batch):
            chosen = np.arange(start, start + args.batch) % len(points)
            times, ids = encode(points[chosen], args.time_scale)
            hits = np.asarray(predict(p, {"inp": (times, ids)}) == labels[chosen])
            correct += int(hits[:len(points) - start].sum())
        return correct / len(points)

    steps_per_epoch = len(x_train) // args.batch
    schedule = optax.cosine_decay_schedule(args.lr, args.epochs * steps_per_epoch, alpha=0.05)
    optimiser = optax.chain(optax.clip_by_global_norm(args.clip), optax.adam(schedule))
    state = optimiser.init(params)
    rng = np.random.default_rng(args.seed)
    history, started = [], time.perf_counter()
    columns = (TextColumn("{task.description:6s}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("{task.fields[status]}"))
    with Progress(*columns) as progress:
        epochs = progress.add_task("epochs", total=args.epochs, status="")
        batches = progress.add_task("batches", total=len(x_train) // args.batch, status="")
        for epoch in range(1, args.epochs + 1):
            order = rng.permutation(len(x_train))
            progress.reset(batches)
            losses, accs = [], []
            for start in range(0, len(order) - args.batch + 1, args.batch):
                chosen = order[start:start + args.batch]
                times, ids = encode(x_train[chosen], args.time_scale)
                params, state, loss, acc = train_step(params, state, {"inp": (times, ids)}, y_train[chosen])
                losses.append(float(loss))
                accs.append(float(acc))
                progress.update(batches, advance=1, status=f"loss {np.mean(losses):.4f}  train acc {np.mean(accs):.3f}")
            test = accuracy(params, x_test, y_test)
            history.append({"epoch": epoch, "loss": float(np.mean(losses)), "train_accuracy": float(np.mean(accs)),
                            "test_accuracy": test, "wall_s": time.perf_counter() - started})
            progress.update(epochs, advance=1, status=f"loss {np.mean(losses):.4f}  test acc {test:.3f}")
            if args.json:  # after every epoch, so that an interrupted run keeps its history
                args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                 "history": history}, indent=1))
    best = max(history, key=lambda h: h["test_accuracy"])
    print(f"best test accuracy {best['test_accuracy']:.4f} at epoch {best['epoch']} after {best['wall_s']:.0f} s; "
          f"final {history[-1]['test_accuracy']:.4f}")


if __name__ == "__main__":
    main()
