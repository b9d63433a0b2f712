"""The model registry under $PROMO_HOME/models: every trained version with its card (training
window, features, parameters, seed, metrics, data fingerprint), and which one is promoted.

    models/<kind>/<version>/model.pkl     the fitted model (pickle; never committed to git)
    models/<kind>/<version>/card.json     what it was trained on and how well it did
    models/<kind>/promoted.json           the promoted version and the ones before it

Every card states the window its metrics were measured on (`metrics_window`: the days, the
rows, and what the kind counts, such as fraud cases). Scoring always loads the promoted version.
Promotion follows the promotion gate (promotion_gate.py, decided by promotion.py): a version is
promoted over the promoted one only when the gate, decided against that very version, says
PROMOTE, unless forced; rollback goes back to the version promoted before.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from models_ml.promotion_gate import PROMOTE

KINDS = ("fraud", "personalisation")
VERSION = re.compile(r"^(?P<kind>[a-z]+)-v(?P<number>\d+)$")


class RegistryError(Exception):
    """A registry request that cannot be carried out; the message says why."""


@dataclass(frozen=True)
class ModelCard:
    kind: str
    version: str
    created_at: str
    training_window: dict[str, str]  # {"from": ISO date, "to": ISO date}
    features: list[str]
    params: dict[str, Any]
    seed: int
    metrics: dict[str, float]
    primary_metric: str  # the metric promotion compares, higher is better
    data_fingerprint: str
    extra: dict[str, Any] = field(default_factory=dict)
    # What `metrics` were measured on: "from" and "to" (ISO dates), "rows", and what else the
    # kind counts ("cases", ...). Required of every new version; empty only on older cards.
    metrics_window: dict[str, Any] = field(default_factory=dict)
    # The promotion gate's decision when the version was trained (GateDecision.as_dict() plus
    # "against": the version it was compared with, None when nothing was promoted).
    promotion_gate: dict[str, Any] | None = None


class Registry:
    def __init__(self, home: Path) -> None:
        self.root = home / "models"

    def save(self, kind: str, model: Any, card_fields: dict[str, Any]) -> ModelCard:
        """Store a newly trained model as the next version of its kind (not promoted)."""
        _check_kind(kind)
        folder = self.root / kind
        folder.mkdir(parents=True, exist_ok=True)
        number = 1 + max((self._number(card.version) for card in self.list(kind)), default=0)
        version = f"{kind}-v{number}"
        card = ModelCard(
            kind=kind,
            version=version,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            **card_fields,
        )
        if card.primary_metric not in card.metrics:
            raise RegistryError(f"primary_metric {card.primary_metric!r} is not among the metrics")
        _check_metrics_window(card.metrics_window)
        target = folder / version
        staging = folder / f".{version}.tmp"
        staging.mkdir()
        (staging / "model.pkl").write_bytes(pickle.dumps(model, protocol=5))
        (staging / "card.json").write_text(json.dumps(asdict(card), indent=2, sort_keys=True))
        os.replace(staging, target)  # a version appears whole or not at all
        return card

    def list(self, kind: str | None = None) -> list[ModelCard]:
        kinds = [kind] if kind else list(KINDS)
        cards = []
        for name in kinds:
            _check_kind(name)
            for path in sorted((self.root / name).glob("[!.]*-v*/card.json")):
                cards.append(ModelCard(**json.loads(path.read_text())))
        return sorted(cards, key=lambda card: (card.kind, self._number(card.version)))

    def card(self, version: str) -> ModelCard:
        kind = self._kind_of(version)
        path = self.root / kind / version / "card.json"
        if not path.exists():
            raise RegistryError(f"no model version {version}")
        return ModelCard(**json.loads(path.read_text()))

    def promoted(self, kind: str) -> ModelCard | None:
        history = self._history(kind)
        return self.card(history[-1]) if history else None

    def load(self, kind: str, version: str | None = None) -> tuple[Any, ModelCard]:
        """The promoted model of a kind (or a given version) with its card."""
        card = self.card(version) if version else self.promoted(kind)
        if card is None:
            raise RegistryError(
                f"no promoted {kind} model: run `promo models train {kind}` then `promo models promote VERSION`"
            )
        model = pickle.loads((self.root / card.kind / card.version / "model.pkl").read_bytes())
        return model, card

    def promote(
        self, version: str, force: bool = False, gate: dict[str, Any] | None = None
    ) -> ModelCard:
        """Make `version` the one scoring uses. Over a promoted version, only when the promotion
        gate decided PROMOTE against that very version: `gate` when given (decided just now),
        else the one on the card (decided at training); `force` skips the gate."""
        card = self.card(version)
        current = self.promoted(card.kind)
        if current is not None and current.version == version:
            raise RegistryError(f"{version} is already promoted")
        decision = gate or card.promotion_gate
        if current is not None and not force:
            if decision is None or decision.get("against") != current.version:
                raise RegistryError(
                    f"{version} has no promotion-gate decision against the promoted "
                    f"{current.version}: `promo models promote {version}` decides one on the "
                    "lake; use --force to promote it without"
                )
            if decision["decision"] != PROMOTE:
                raise RegistryError(
                    f"{version} is not promoted over {current.version} ({decision['decision']}): "
                    f"{decision['reason']}; use --force to promote it anyway"
                )
        change = {"version": version, "forced": force and current is not None, "gate": decision}
        self._write_history(card.kind, [*self._history(card.kind), version], change)
        return card

    def rollback(self, kind: str) -> ModelCard:
        """Go back to the version promoted before the current one."""
        history = self._history(kind)
        if len(history) < 2:
            raise RegistryError(f"no earlier promoted {kind} model to roll back to")
        self._write_history(kind, history[:-1], {"rolled_back": history[-1]})
        return self.card(history[-2])

    def _history(self, kind: str) -> list[str]:
        _check_kind(kind)
        path = self.root / kind / "promoted.json"
        return json.loads(path.read_text())["history"] if path.exists() else []

    def last_change(self, kind: str) -> dict[str, Any] | None:
        """The last promotion or rollback of a kind: which version, whether forced, and the
        gate decision it followed."""
        _check_kind(kind)
        path = self.root / kind / "promoted.json"
        return json.loads(path.read_text()).get("last_change") if path.exists() else None

    def _write_history(self, kind: str, history: list[str], change: dict[str, Any]) -> None:
        path = self.root / kind / "promoted.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        body = {
            "history": history,
            "changed_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "last_change": change,
        }
        tmp.write_text(json.dumps(body, indent=2))
        os.replace(tmp, path)

    @staticmethod
    def _number(version: str) -> int:
        match = VERSION.match(version)
        if not match:
            raise RegistryError(f"{version!r} is not a model version (like fraud-v3)")
        return int(match["number"])

    def _kind_of(self, version: str) -> str:
        match = VERSION.match(version)
        if not match:
            raise RegistryError(f"{version!r} is not a model version (like fraud-v3)")
        _check_kind(match["kind"])
        return match["kind"]


def _check_metrics_window(window: dict[str, Any]) -> None:
    """A card's metrics state their window: from and to (ISO dates, in order) and rows."""
    missing = [name for name in ("from", "to", "rows") if name not in window]
    if missing:
        raise RegistryError(
            f"metrics_window lacks {', '.join(missing)}: a card's metrics state their window"
        )
    try:
        first, last = (datetime.fromisoformat(str(window[k])).date() for k in ("from", "to"))
    except ValueError:
        raise RegistryError(
            f"metrics_window from/to are not ISO dates: {window['from']!r}, {window['to']!r}"
        ) from None
    if first > last:
        raise RegistryError(f"metrics_window from {first} is after to {last}")
    rows = window["rows"]
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
        raise RegistryError(f"metrics_window rows must be a whole number of rows, not {rows!r}")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise RegistryError(f"unknown model kind {kind!r}: one of {', '.join(KINDS)}")
