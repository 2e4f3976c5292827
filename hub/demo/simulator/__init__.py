"""The simulated campus: deterministic interval data, meter files and Modbus devices."""

from kwhub.hub.demo.simulator.campus import (
    ALL_CHANNELS,
    AVAIL_CHANNELS,
    ENERGY_CHANNELS,
    FUEL_CHANNELS,
    GENERATION_CHANNELS,
    LOAD_CHANNELS,
    FaultSpec,
    InjectedFault,
    SimResult,
    campus_definition,
    sim_span,
    simulate,
)
from kwhub.hub.demo.simulator.files import write_csv, write_greenbutton

__all__ = [
    "ALL_CHANNELS",
    "AVAIL_CHANNELS",
    "ENERGY_CHANNELS",
    "FUEL_CHANNELS",
    "GENERATION_CHANNELS",
    "LOAD_CHANNELS",
    "FaultSpec",
    "InjectedFault",
    "SimResult",
    "campus_definition",
    "sim_span",
    "simulate",
    "write_csv",
    "write_greenbutton",
]
