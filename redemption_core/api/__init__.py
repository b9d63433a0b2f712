"""The HTTP API over the redemption core (`promo serve`): JSON over HTTP for checkouts, apps
and other systems, under versioned paths (`/v1/...`), authenticated with API keys and
answering errors as RFC 9457 problem details with the CLI's reason codes.

app.py builds the Litestar application; checkout.py and resources.py are its routes;
service.py holds a worker's engines; writer.py group-commits its writes.

May import every other subpackage but the CLI.
"""
