"""`promo serve`: the HTTP API (redemption_core/api) on uvicorn, over the ledger of PROMO_HOME
(PROMO_LEDGER_URL's PostgreSQL database when it is set, which several machines' servers may
share), on 127.0.0.1 unless told otherwise. Several workers share the one ledger."""

from __future__ import annotations

import argparse
import os
from typing import Any

from redemption_core.cli.common import Output, bounded
from redemption_core.ledger.home import promo_home


def register(commands: Any) -> None:
    serve = commands.add_parser("serve", help="the HTTP API (JSON, /v1/...)")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=bounded(1, 65535), default=8000, help="port to listen on (default 8000)"
    )
    serve.add_argument(
        "--workers", type=bounded(1, 256), default=2, help="processes (one ledger; at most 256)"
    )
    serve.add_argument(
        "--forwarded-allow-ips",
        default=None,
        help="proxies whose X-Forwarded-For is trusted for the client IP (e.g. 127.0.0.1)",
    )
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace, out: Output) -> int:
    import uvicorn

    # Each worker process builds its app from the environment: fix the home for all of them.
    os.environ["PROMO_HOME"] = str(promo_home())
    proxied = args.forwarded_allow_ips is not None
    uvicorn.run(
        "redemption_core.api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        proxy_headers=proxied,
        forwarded_allow_ips=args.forwarded_allow_ips if proxied else "",
        server_header=False,
    )
    return 0
