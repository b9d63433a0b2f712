"""The simulator: a seeded business run through the real engine and distribution, with fraud
injected and labelled outside the ledger (ground truth for the models).

May import the domain, the ledger, the engine and distribution.
"""

from redemption_core.simulate.config import SimulationConfig, SimulationReport
from redemption_core.simulate.fraud import FRAUD_PATTERNS
from redemption_core.simulate.simulation import simulate

__all__ = ["FRAUD_PATTERNS", "SimulationConfig", "SimulationReport", "simulate"]
