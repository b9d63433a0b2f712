"""Operations: what `make dagster` starts (schedule, growth sensor and retrain running unless
PROMO_AUTOMATION=off; telemetry and the newsletter prompt off), and the notices an operator
gets when a run fails or the published warehouse is late, through a real SMTP server on
loopback (aiosmtpd) and a real HTTP endpoint."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import dagster as dg
import pytest
from aiosmtpd.controller import Controller

from pipelines.defs.alerts import (
    PUBLISHED,
    AlertsConfig,
    failure_notice,
    lateness,
    published_warehouse_lateness,
    run_failure_notice,
)
from pipelines.resources import PromoHomeResource
from pipelines.run import prepare_environment, run_pipeline
from redemption_core import (
    InvalidInput,
    Notice,
    NotificationError,
    RedemptionEngine,
    SettableClock,
    load_notifier,
)

REPO = Path(__file__).resolve().parent.parent
AUTOMATIONS = {"nightly_schedule", "weekly_retrain", "ledger_growth_sensor"}
NOTICE_SENSORS = {"run_failure_notice", "published_warehouse_lateness"}

# A campaign is all the ledger needs for a day to extract.
CAMPAIGN = {
    "id": "spring",
    "name": "Spring",
    "currency": "EUR",
    "status": "active",
    "voucher": {"kind": "standalone", "code": "SPRING10"},
    "discount": {"type": "amount", "amount_off": 500},
}


# ---- what `make dagster` starts --------------------------------------------------------------

STATUSES = """
import json, sys
from dagster import DagsterInstance
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.workspace.load_target import ModuleTarget

instance = DagsterInstance.get()
target = ModuleTarget("pipelines.definitions", None, sys.argv[1], None)
with create_test_daemon_workspace_context(target, instance) as workspace:
    context = workspace.create_request_context()
    (entry,) = context.get_code_location_entries().values()
    assert entry.code_location, entry.load_error
    (repository,) = entry.code_location.get_repositories().values()
    states = {}
    for instigator in [*repository.get_schedules(), *repository.get_sensors()]:
        stored = instance.get_instigator_state(
            instigator.get_remote_origin_id(), instigator.selector_id
        )
        states[instigator.name] = instigator.get_current_instigator_state(stored).is_running
print(json.dumps({
    "states": states,
    "telemetry": instance.telemetry_enabled,
    "nux": instance.nux_enabled,
}))
"""


def dagster_statuses(home: Path, **env: str) -> dict:
    """Set up the instance as `make dagster` does (pipelines.run --setup-only), load the code
    location the way the daemon does (a code server), and ask the instance which schedules and
    sensors are running."""
    environment = {
        k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "PROMO_WAREHOUSE")
    }
    environment |= {"PROMO_HOME": str(home), "DO_NOT_TRACK": "1", **env}
    setup = subprocess.run(
        [sys.executable, "-m", "pipelines.run", "--setup-only"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert setup.returncode == 0, setup.stderr
    environment |= {
        "DAGSTER_HOME": str(home / "dagster"),
        "PROMO_WAREHOUSE": str(home / "warehouse" / "build.duckdb"),
    }
    done = subprocess.run(
        [sys.executable, "-c", STATUSES, str(REPO)],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # the code server logs to stdout too; the statuses are the one JSON line
    (found,) = [line for line in done.stdout.splitlines() if line.startswith('{"states"')]
    return {"setup": setup.stdout, **json.loads(found)}


def test_after_make_dagster_starts_the_schedules_and_sensors_are_running_and_telemetry_is_off(
    tmp_path: Path,
) -> None:
    found = dagster_statuses(tmp_path)

    assert {name for name, running in found["states"].items() if running} >= (
        AUTOMATIONS | NOTICE_SENSORS
    )
    assert found["telemetry"] is False
    assert found["nux"] is False  # no newsletter prompt in the UI
    assert "running (start them stopped with PROMO_AUTOMATION=off)" in found["setup"]


DEFAULT_STATUSES = """
import json
from pipelines.definitions import defs
repository = defs.get_repository_def()
print(json.dumps({
    d.name: d.default_status.value for d in [*repository.schedule_defs, *repository.sensor_defs]
}))
"""


def test_promo_automation_off_starts_them_stopped_but_keeps_the_notices(tmp_path: Path) -> None:
    environment = dict(os.environ, PROMO_HOME=str(tmp_path), PROMO_AUTOMATION="off")
    environment.setdefault("PROMO_WAREHOUSE", str(tmp_path / "build.duckdb"))

    done = subprocess.run(
        [sys.executable, "-c", DEFAULT_STATUSES],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    statuses = json.loads(done.stdout.strip().splitlines()[-1])
    assert {name for name, status in statuses.items() if status == "STOPPED"} == AUTOMATIONS
    assert {name for name, status in statuses.items() if status == "RUNNING"} == NOTICE_SENSORS


def test_an_unknown_automation_switch_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipelines.defs.automation import automation_running

    monkeypatch.setenv("PROMO_AUTOMATION", "sometimes")

    with pytest.raises(ValueError, match="PROMO_AUTOMATION must be 'on' or 'off'"):
        automation_running()


# ---- notices -------------------------------------------------------------------------------


class Inbox:
    """Messages an aiosmtpd server on loopback received."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


def write_notifications(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "notifications.yaml").write_text(text)


def email_config(port: int) -> str:
    return (
        "email:\n"
        "  host: 127.0.0.1\n"
        f"  port: {port}\n"
        "  from: pipeline@promoledger.test\n"
        "  to: [ops@promoledger.test, data@promoledger.test]\n"
    )


def promo(home: Path) -> PromoHomeResource:
    return PromoHomeResource(home=str(home), warehouse=str(home / "warehouse" / "build.duckdb"))


def test_a_failed_nightly_run_sends_an_email_saying_what_stopped_it(
    tmp_path: Path, smtp: tuple[int, Inbox]
) -> None:
    port, inbox = smtp
    home = tmp_path / "home"
    with RedemptionEngine.open(
        home, clock=SettableClock(datetime(2026, 1, 5, 9, tzinfo=UTC))
    ) as engine:
        engine.create_from_definition(CAMPAIGN)
    (home / "lake").write_text("not a folder")  # the extract step cannot write the lake
    write_notifications(home, email_config(port))
    prepare_environment(home)
    with dg.instance_for_test() as instance:
        result = run_pipeline(
            home, date(2026, 1, 5), date(2026, 1, 5), instance=instance, quiet=True
        )
        assert not result.success
        run = instance.get_run_by_id(result.run_id)
        failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_notice",
            dagster_event=failure,
            dagster_instance=instance,
            dagster_run=run,
            resources={"promo": promo(home)},
        ).for_run_failure()

        run_failure_notice(context)

    ((sender, recipients, content),) = inbox.messages
    email = message_from_bytes(content, policy=policy.default)
    assert sender == "pipeline@promoledger.test"
    assert recipients == ["ops@promoledger.test", "data@promoledger.test"]
    assert email["Subject"] == "promoledger: nightly_pipeline failed"
    body = email.get_content()
    assert f"run {result.run_id} failed (days 2026-01-05 to 2026-01-05)" in body
    assert re.search(r"- step raw__ledger_events failed: \S", body), body


def test_without_notifications_yaml_the_failure_sensor_says_nobody_was_told(
    tmp_path: Path,
) -> None:
    run = dg.DagsterRun(job_name="nightly_pipeline", run_id="r-1")
    event = dg.DagsterEvent(
        event_type_value="PIPELINE_FAILURE", job_name="nightly_pipeline", message="boom"
    )
    with dg.instance_for_test() as instance:
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_notice",
            dagster_event=event,
            dagster_instance=instance,
            dagster_run=run,
            resources={"promo": promo(tmp_path)},
        ).for_run_failure()

        skipped = run_failure_notice(context)

    assert "no notifications.yaml under PROMO_HOME" in skipped.skip_message


def test_a_late_published_warehouse_sends_one_notice_per_late_publish(
    tmp_path: Path, smtp: tuple[int, Inbox]
) -> None:
    port, inbox = smtp
    write_notifications(tmp_path, email_config(port))
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(PUBLISHED))
        resources = {"promo": promo(tmp_path), "alerts": AlertsConfig(late_after_hours=0)}
        first = dg.build_sensor_context(instance=instance, resources=resources)

        told = published_warehouse_lateness(first)
        again = published_warehouse_lateness(
            dg.build_sensor_context(instance=instance, resources=resources, cursor=first.cursor)
        )
        on_time = published_warehouse_lateness(
            dg.build_sensor_context(
                instance=instance, resources={**resources, "alerts": AlertsConfig()}
            )
        )

    assert "notice sent" in told.skip_message
    assert "already told" in again.skip_message
    assert "on time" in on_time.skip_message
    ((_, _, content),) = inbox.messages
    email = message_from_bytes(content, policy=policy.default)
    assert email["Subject"] == "promoledger: the published warehouse is late"
    assert "The console still shows the old numbers" in email.get_content()


def test_lateness_counts_from_the_last_publish_and_a_home_never_published_is_not_late() -> None:
    now = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    window = timedelta(hours=26)

    assert lateness(now - timedelta(hours=25), now, window) is None
    assert lateness(now - timedelta(hours=30), now, window) == timedelta(hours=4)
    assert lateness(None, now, window) is None


def test_a_failure_notice_without_step_messages_falls_back_to_the_runs_own_error() -> None:
    run = dg.DagsterRun(job_name="retrain_models", run_id="r-9")

    notice = failure_notice(run, [], "the run worker died")

    assert "- the run worker died" in notice.text
    assert notice.key == "run-failed-r-9"


class Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict, dict]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append((dict(self.headers), json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_webhook_gets_the_notice_as_json_with_a_bearer_token_and_an_idempotency_key() -> None:
    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Hook.received.clear()
    try:
        notifier = load_notifier(
            {
                "webhook": {
                    "url": f"http://127.0.0.1:{server.server_port}/hook",
                    "token_env": "HOOK_TOKEN",
                }
            },
            environ={"HOOK_TOKEN": "s3cret"},
        )

        reached = notifier.send(Notice("subject", "text", key="run-failed-r-1", kind="run_failed"))
    finally:
        server.shutdown()
        server.server_close()

    assert reached == ["webhook"]
    ((headers, body),) = Hook.received
    assert body == {"kind": "run_failed", "subject": "subject", "text": "text"}
    assert headers["Authorization"] == "Bearer s3cret"
    assert headers["Idempotency-Key"].startswith("notice-")


def test_a_channel_that_cannot_be_reached_is_named_after_every_channel_was_tried(
    smtp: tuple[int, Inbox],
) -> None:
    port, inbox = smtp
    notifier = load_notifier(
        {
            "email": {
                "host": "127.0.0.1",
                "port": port,
                "from": "p@promoledger.test",
                "to": "ops@promoledger.test",
            },
            "webhook": {"url": f"http://127.0.0.1:{free_port()}/nobody-listens"},
        },
        environ={},
    )

    with pytest.raises(NotificationError, match="webhook: connection refused"):
        notifier.send(Notice("s", "t", key="k"))

    assert len(inbox.messages) == 1  # the email still went


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "notifications"),
        ({"pager": {}}, "notifications.pager"),
        ({"email": {"host": "h", "from": "a@b.c"}}, "notifications.email.to"),
        (
            {"email": {"host": "h", "from": "a@b.c", "to": ["ops@x.y", "not an address"]}},
            "notifications.email.to[1]",
        ),
        (
            {"email": {"host": "h", "from": "a@b.c", "to": "o@x.y", "password": "p"}},
            "notifications.email.password",
        ),
        ({"webhook": {"url": "file:///etc/passwd"}}, "notifications.webhook.url"),
        (
            {"webhook": {"url": "http://hooks.example.com/x", "token_env": "T"}},
            "notifications.webhook.url",
        ),
    ],
)
def test_a_bad_notifications_file_is_refused_naming_the_field(config: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        load_notifier(config, environ={"T": "t"})

    assert refused.value.field == field
