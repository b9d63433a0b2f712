"""Distribution: promotions and autopilots that decide who gets which voucher
(distributor.py), the delivery channels that send them (channels.py: SMTP, HTTP providers,
file outboxes) and their configuration from PROMO_HOME/delivery.yaml (delivery_config.py).

May import the domain, the ledger and the engine.
"""
