"""The unit names the language accepts, each as (factor to the internal unit, dimension)."""

from __future__ import annotations

from qgen.ir.dimension import (
    CAPACITANCE,
    CONDUCTANCE,
    CURRENT,
    FREQUENCY,
    RESISTANCE,
    TIME,
    VOLTAGE,
    Dimension,
)

UNITS: dict[str, tuple[float, Dimension]] = {
    # time (internal: ms)
    "s": (1e3, TIME), "ms": (1.0, TIME), "us": (1e-3, TIME), "ns": (1e-6, TIME),
    # voltage (internal: mV)
    "V": (1e3, VOLTAGE), "mV": (1.0, VOLTAGE), "uV": (1e-3, VOLTAGE),
    # current (internal: pA)
    "A": (1e12, CURRENT), "mA": (1e9, CURRENT), "uA": (1e6, CURRENT), "nA": (1e3, CURRENT),
    "pA": (1.0, CURRENT),
    # capacitance (internal: pF)
    "F": (1e12, CAPACITANCE), "uF": (1e6, CAPACITANCE), "nF": (1e3, CAPACITANCE),
    "pF": (1.0, CAPACITANCE),
    # conductance (internal: nS)
    "S": (1e9, CONDUCTANCE), "mS": (1e6, CONDUCTANCE), "uS": (1e3, CONDUCTANCE),
    "nS": (1.0, CONDUCTANCE),
    # resistance (internal: GOhm)
    "Ohm": (1e-9, RESISTANCE), "kOhm": (1e-6, RESISTANCE), "MOhm": (1e-3, RESISTANCE),
    "GOhm": (1.0, RESISTANCE),
    # frequency (internal: 1/ms)
    "Hz": (1e-3, FREQUENCY), "kHz": (1.0, FREQUENCY),
}

