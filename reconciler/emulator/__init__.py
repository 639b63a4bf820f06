"""A local Azure: Batch data plane, ARM (Batch, Compute, Network) and a token endpoint.

Unmodified Azure SDK clients talk to it over HTTP(S). It powers the demo and every test. Nothing else in
the `reconciler` package imports it.
"""

from reconciler.emulator.api import Emulator, ThreadedEmulator

__all__ = ["Emulator", "ThreadedEmulator"]
