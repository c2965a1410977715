"""The standard library of neuron kinds, shipped as .snn files and imported as "std/NAME.snn"."""
