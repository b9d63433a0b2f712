"""Delivery providers on simulated time: failure rates and latencies per channel."""

from __future__ import annotations

import random

from redemption_core.distribution.channels import (
    Channel,
    FileSinkChannel,
    Message,
    PermanentDeliveryError,
    TransientDeliveryError,
)


class SimulatedChannel(Channel):
    """A provider with a failure rate and a latency per channel, on simulated time.

    It writes what it delivers to a file sink, like the demo's outbox; failures are transient
    (the distributor retries them), the latency advances the simulated timer.
    """

    def __init__(self, channel: str, sink: FileSinkChannel, rng: random.Random, timer: SimTimer):
        self.name = f"sim-{channel}"
        self.channel = channel  # type: ignore[assignment]
        self._sink = sink
        self._rng = rng
        self._timer = timer
        self._failure = {"email": 0.03, "sms": 0.06, "push": 0.02}[channel]
        self._latency_ms = {"email": 180.0, "sms": 450.0, "push": 60.0}[channel]

    def send(self, message: Message) -> None:
        self._timer.advance(self._rng.expovariate(1 / self._latency_ms) / 1000.0)
        draw = self._rng.random()
        if draw < 0.01:
            raise PermanentDeliveryError("address bounced (simulated)")
        if draw < 0.01 + self._failure:
            raise TransientDeliveryError("provider unavailable (simulated)")
        self._sink.send(message)

    def flush(self) -> None:
        self._sink.flush()

    def close(self) -> None:
        self._sink.close()


class SimTimer:
    """The clock send_with_retry measures latency with, advanced by simulated sends."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def advance(self, seconds: float) -> None:
        self.seconds += seconds

    def __call__(self) -> float:
        return self.seconds
