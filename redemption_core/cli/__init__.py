"""The `promo` command: one module per command group, thin over the engine, distribution,
imports and the simulator. Bad input exits 2 naming the field; a rule's refusal exits 1.

May import every other subpackage of redemption_core.
"""

from redemption_core.cli.main import main

__all__ = ["main"]
