"""The model registry under $PROMO_HOME/models: every trained version with its card (training
window, features, parameters, seed, metrics, data fingerprint), and which one is promoted.

    models/<kind>/<version>/model.pkl     the fitted model (pickle; never committed to git)
    models/<kind>/<version>/card.json     what it was trained on and how well it did
    models/<kind>/promoted.json           the promoted version and the ones before it

Scoring always loads the promoted version. Promotion refuses a model whose primary metric is
below the promoted one's unless forced; rollback goes back to the version promoted before.
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

    def folder(self, version: str) -> Path:
        """Where a version's files are (model.pkl, card.json and what evaluations add)."""
        card = self.card(version)
        return self.root / card.kind / card.version

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

    def promote(self, version: str, force: bool = False) -> ModelCard:
        """Make `version` the one scoring uses, unless its primary metric is below the promoted one's."""
        card = self.card(version)
        current = self.promoted(card.kind)
        if current is not None and current.version == version:
            raise RegistryError(f"{version} is already promoted")
        if current is not None and not force:
            mine, theirs = (
                card.metrics[card.primary_metric],
                current.metrics.get(card.primary_metric),
            )
            if theirs is not None and mine < theirs:
                raise RegistryError(
                    f"{version} has {card.primary_metric} {mine:.4f}, below the promoted "
                    f"{current.version}'s {theirs:.4f}; use --force to promote it anyway"
                )
        self._write_history(card.kind, [*self._history(card.kind), version])
        return card

    def rollback(self, kind: str) -> ModelCard:
        """Go back to the version promoted before the current one."""
        history = self._history(kind)
        if len(history) < 2:
            raise RegistryError(f"no earlier promoted {kind} model to roll back to")
        self._write_history(kind, history[:-1])
        return self.card(history[-2])

    def _history(self, kind: str) -> list[str]:
        _check_kind(kind)
        path = self.root / kind / "promoted.json"
        return json.loads(path.read_text())["history"] if path.exists() else []

    def _write_history(self, kind: str, history: list[str]) -> None:
        path = self.root / kind / "promoted.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        body = {"history": history, "changed_at": datetime.now(UTC).isoformat(timespec="seconds")}
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


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise RegistryError(f"unknown model kind {kind!r}: one of {', '.join(KINDS)}")
