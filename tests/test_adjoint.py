"""The reference adjoint against finite differences (DESIGN.md §4), for every queue kind and gradient kind."""

from __future__ import annotations

import numpy as np
import pytest

from qgen.errors import QgenError
from qgen.reference import ReferenceSimulator
from tests import gradcheck

KINDS = ["ring", "fifo", "heap", "sorted"]

LIF = """
neuron LIF {
    parameters { tau_m = 10 ms; tau_s = 3 ms; v_th = 1.0; v_reset = 0.1; t_ref = 1.5 ms; I_e = 0.3 }
    state { v = 0.0; i = 0.0 }
    equations {
        dv/dt = (i + I_e - v) / tau_m
        di/dt = -i / tau_s
    }
    threshold v >= v_th
    reset { v = v_reset }
    refractory t_ref
    on_event(w) { i += w }
}
"""

# events jump the voltage itself: spikes happen at event arrivals (the reset at a fixed time)
DELTA = """
neuron Delta {
    parameters { tau_m = 8 ms; v_th = 1.0; v_reset = 0.0; t_ref = 1 ms; I_e = 0.5 }
    state { v = 0.0 }
    equations { dv/dt = (I_e - v) / tau_m }
    threshold v >= v_th
    reset { v = v_reset }
    refractory t_ref
    on_event(w) { v += w }
}
"""


def network(kind: str, capacity: int = 16, neuron: str = "LIF", hidden: str = "v ~ uniform(0.0, 0.5)",
            trainable: str = "") -> str:
    return f"""
network Net {{
    dt = 0.1 ms
    timing = exact
    seed = 3
    population inp = input(4)
    population hid = {neuron}(6, {hidden}{trainable})
    connect inp -> hid all_to_all {{
        weight ~ uniform(0.5, 1.5) trainable
        delay ~ uniform(0.5 ms, 3 ms) trainable
        queue = {kind}(capacity = {capacity})
    }}
    connect hid -> hid all_to_all(autapses = false) {{
        weight ~ uniform(-0.4, 0.6) trainable
        delay ~ uniform(0.3 ms, 2 ms) trainable
        queue = {kind}(capacity = {capacity})
    }}
    record hid.spikes, hid.v
}}
"""


def inputs(seed: int = 1, count: int = 12):
    rng = np.random.default_rng(seed)
    return {"inp": (np.sort(rng.uniform(0, 20, count)), rng.integers(0, 4, count))}


def synapse_quantities(sim, gradients, per_projection: int = 4) -> list[gradcheck.Quantity]:
    out = []
    for name, proj in sim.data.projections.items():
        for what, array, grad in (("weight", proj.weight, gradients.weights[name]),
                                  ("delay", proj.delay, gradients.delays[name])):
            # the synapses that carried events, so that the check is not about zeros
            for s in np.argsort(-np.abs(grad))[:per_projection]:
                out.append(gradcheck.Quantity(f"{name}.{what}[{s}]", lambda a=array, s=s: a[s],
                                              lambda v, a=array, s=s: a.__setitem__(s, v), float(grad[s])))
    return out


def parameter_quantities(sim, gradients, pop: str = "hid") -> list[gradcheck.Quantity]:
    data = sim.data.populations[pop]

    def setter(name):
        def set_(v):
            data.params[name] = v
            sim._dynamics.clear()
            sim._adjoints.clear()
        return set_
    out = [gradcheck.Quantity(f"{pop}.{p}", lambda p=p: data.params[p], setter(p), g)
           for p, g in gradients.parameters[pop].items()]
    for var, grad in gradients.initial.get(pop, {}).items():
        for j in (0, 3):
            out.append(gradcheck.Quantity(f"{pop}.{var}[{j}](0)", lambda a=data.initial[var], j=j: a[j],
                                          lambda v, a=data.initial[var], j=j: a.__setitem__(j, v), float(grad[j])))
    return out


def forward_backward(data, batch: int = 1, seed: int = 1, **run):
    sim = ReferenceSimulator(data, batch=batch)
    given = {"inp": [inputs(seed + b)["inp"] for b in range(batch)]}
    result = sim.run(given, 40.0, grad=True)
    cotangents = gradcheck.random_cotangents(result, np.random.default_rng(seed))
    gradients = sim.backward(cotangents)
    return sim, given, result, cotangents, gradients


@pytest.mark.parametrize("kind", KINDS)
def test_weight_and_delay_gradients_match_finite_differences(build, kind):
    data = build(LIF + network(kind))
    sim, given, result, cot, grads = forward_backward(data)
    assert result.spikes["hid"].counts.sum() >= 8  # recurrent spikes carry the gradients too
    quantities = synapse_quantities(sim, grads)
    assert gradcheck.check(quantities, lambda: sim.run(given, 40.0), cot, result) == []


def test_parameter_and_initial_state_gradients_match_finite_differences(build):
    trainable = ", tau_m = 10 ms trainable, tau_s = 3 ms trainable, v_th = 1.0 trainable, " \
                "v_reset = 0.1 trainable, t_ref = 1.5 ms trainable, I_e = 0.3 trainable"
    text = LIF.replace("state { v = 0.0; i = 0.0 }", "state { v = 0.0 trainable; i = 0.0 trainable }")
    data = build(text + network("heap", trainable=trainable))
    sim, given, result, cot, grads = forward_backward(data)
    assert set(grads.parameters["hid"]) == {"tau_m", "tau_s", "v_th", "v_reset", "t_ref", "I_e"}
    quantities = parameter_quantities(sim, grads)
    assert gradcheck.check(quantities, lambda: sim.run(given, 40.0), cot, result) == []


def test_spikes_triggered_by_events_and_a_batch(build):
    # v jumps at arrivals, so most spikes happen at an event's arrival time: dL/dt_k moves with
    # the event (the reset at a fixed time); two trials share the weights, their gradients add
    trainable = ", tau_m = 8 ms trainable, v_th = 1.0 trainable, v_reset = 0.0 trainable, " \
                "t_ref = 1 ms trainable, I_e = 0.5 trainable"
    data = build(DELTA + network("sorted", neuron="Delta", hidden="v ~ uniform(0.0, 0.5)", trainable=trainable)
                 .replace("uniform(0.5, 1.5)", "uniform(0.3, 0.7)").replace("uniform(-0.4, 0.6)", "uniform(-0.2, 0.4)"))
    sim, given, result, cot, grads = forward_backward(data, batch=2)
    assert result.spikes["hid"].counts.sum() >= 10
    quantities = synapse_quantities(sim, grads, per_projection=3) + parameter_quantities(sim, grads)
    assert gradcheck.check(quantities, lambda: sim.run(given, 40.0), cot, result) == []


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_with_dropped_events(build, kind):
    # a capacity of 1 drops events; the backward pass leaves out exactly those the forward dropped
    data = build(LIF + network(kind, capacity=1).replace("uniform(0.3 ms, 2 ms)", "uniform(2 ms, 6 ms)"))
    sim, given, result, cot, grads = forward_backward(data)
    assert sum(int(d.sum()) for d in result.drops.values()) > 0
    quantities = synapse_quantities(sim, grads, per_projection=3)
    assert gradcheck.check(quantities, lambda: sim.run(given, 40.0), cot, result) == []


def test_backward_errors_are_clear(build):
    data = build(LIF + network("heap"))
    sim = ReferenceSimulator(data)
    with pytest.raises(QgenError, match="grad=True"):
        sim.backward({})
    result = sim.run(inputs(), 20.0, grad=True)
    with pytest.raises(QgenError, match="shape"):
        sim.backward({"hid.v": np.zeros((1, 3, 6))})
    with pytest.raises(QgenError, match="not recorded|neither"):
        sim.backward({"hid.i": np.zeros_like(result.traces["hid.v"])})
    with pytest.raises(QgenError, match="no population"):
        sim.backward({"out.spikes": np.zeros(3)})
    grid = build(LIF + network("heap").replace("timing = exact", "timing = grid"))
    with pytest.raises(QgenError, match="timing = exact"):
        ReferenceSimulator(grid).run(inputs(), 10.0, grad=True)


def test_spike_counts_have_no_gradient(build):
    data = build(LIF + network("fifo"))
    sim = ReferenceSimulator(data)
    result = sim.run(inputs(), 40.0, grad=True)
    grads = sim.backward({"hid.spike_count": np.ones_like(result.spikes["hid"].counts, dtype=float)})
    assert all(not np.any(g) for g in grads.flat().values())
