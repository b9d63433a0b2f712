"""The SQLite ledger's tables: the append-only events (refusing UPDATE and DELETE through
triggers) and the projection's derived tables, which `promo ledger verify` rebuilds.
"""

from __future__ import annotations

# 2: holds' device and IP, redemptions.store_id, api_keys (the HTTP API). 3: audience keyed per
# decision (several vouchers per customer and promotion; a publication decided but not sent),
# redemptions.rollback_cause (the refund cap). See MIGRATIONS.
SCHEMA_VERSION = 3

EVENTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT NOT NULL UNIQUE,
    event_type      TEXT NOT NULL,
    occurred_at     TEXT NOT NULL,
    recorded_at     TEXT NOT NULL,
    campaign_id     TEXT,
    voucher_id      TEXT,
    customer_id     TEXT,
    order_id        TEXT,
    channel         TEXT,
    redemption_id   TEXT,
    idempotency_key TEXT,
    device_hash     TEXT,
    ip_hash         TEXT,
    payment_hash    TEXT,
    store_id        TEXT,
    staff_id        TEXT,
    sales_channel   TEXT,
    payload         TEXT NOT NULL CHECK (json_valid(payload))
);
CREATE TRIGGER IF NOT EXISTS events_are_never_updated BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'ledger events are append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS events_are_never_deleted BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'ledger events are append-only: DELETE refused'); END;
CREATE TRIGGER IF NOT EXISTS events_are_never_replaced BEFORE INSERT ON events
WHEN EXISTS (SELECT 1 FROM events WHERE seq = NEW.seq OR event_id = NEW.event_id)
BEGIN SELECT RAISE(ABORT, 'ledger events are append-only: INSERT OR REPLACE refused'); END;
"""

# Derived state. Every table here is rebuilt from the events by `promo ledger verify`.
PROJECTION_SCHEMA = """
CREATE TABLE IF NOT EXISTS main_campaigns (
    main_campaign_id TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    definition       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS campaigns (
    campaign_id      TEXT PRIMARY KEY,
    main_campaign_id TEXT,
    definition       TEXT NOT NULL,
    status           TEXT NOT NULL,
    vouchers         INTEGER NOT NULL DEFAULT 0,
    redemptions      INTEGER NOT NULL DEFAULT 0,
    budget_used      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS vouchers (
    voucher_id   TEXT PRIMARY KEY,
    code         TEXT NOT NULL UNIQUE,
    campaign_id  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    holder_id    TEXT,
    disabled     INTEGER NOT NULL DEFAULT 0,
    published_at TEXT,
    accepted_at  TEXT,
    redemptions  INTEGER NOT NULL DEFAULT 0,
    gift_balance INTEGER,
    held_until   TEXT,  -- latest expiry of any validation hold: no hold query needed after it
    created_at   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS vouchers_by_campaign ON vouchers (campaign_id);
-- A client-side key publishes "a voucher of this campaign" to a customer: theirs, or a free one.
CREATE INDEX IF NOT EXISTS vouchers_by_holder ON vouchers (campaign_id, holder_id);
-- Redemptions per customer and campaign (per-customer limits). Clustered by customer, so
-- "has this customer redeemed anywhere before" (new-customer rule) is a prefix lookup, and a
-- row stays at 0 after a rollback: the order happened.
CREATE TABLE IF NOT EXISTS customer_campaigns (
    customer_id TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    redemptions INTEGER NOT NULL,
    PRIMARY KEY (customer_id, campaign_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS segment_members (
    customer_id TEXT NOT NULL,
    segment_id  TEXT NOT NULL,
    PRIMARY KEY (customer_id, segment_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS redemptions (
    redemption_id  TEXT PRIMARY KEY,
    voucher_id     TEXT NOT NULL,
    campaign_id    TEXT NOT NULL,
    customer_id    TEXT,
    order_id       TEXT,
    discount       INTEGER NOT NULL,
    gift_amount    INTEGER NOT NULL,
    redeemed_at    TEXT NOT NULL,
    rolled_back_at TEXT,
    store_id       TEXT,  -- where it was redeemed: a key limited to stores rolls back only there
    rollback_cause TEXT  -- payload.cause of the rollback (order_cancelled, order_refunded)
);
CREATE INDEX IF NOT EXISTS redemptions_by_order ON redemptions (order_id);
CREATE TABLE IF NOT EXISTS holds (
    session_id  TEXT PRIMARY KEY,
    voucher_id  TEXT NOT NULL,
    customer_id TEXT,
    expires_at  TEXT NOT NULL,
    consumed    INTEGER NOT NULL DEFAULT 0,
    device_hash TEXT,  -- who holds: open holds are limited per customer, device and IP
    ip_hash     TEXT
);
CREATE INDEX IF NOT EXISTS holds_by_voucher ON holds (voucher_id, consumed, expires_at);
CREATE INDEX IF NOT EXISTS holds_by_customer ON holds (customer_id, expires_at);
CREATE INDEX IF NOT EXISTS holds_by_device ON holds (device_hash, expires_at);
CREATE INDEX IF NOT EXISTS holds_by_ip ON holds (ip_hash, expires_at);
CREATE TABLE IF NOT EXISTS customers (
    customer_id    TEXT PRIMARY KEY,
    signup_at      TEXT NOT NULL,
    birthday       TEXT,  -- MM-DD
    anniversary    TEXT,  -- MM-DD
    attributes     TEXT NOT NULL,
    metadata       TEXT NOT NULL,
    email_hash     TEXT,
    email_masked   TEXT,
    phone_hash     TEXT,
    phone_masked   TEXT,
    consent_email  INTEGER NOT NULL DEFAULT 0,
    consent_sms    INTEGER NOT NULL DEFAULT 0,
    consent_push   INTEGER NOT NULL DEFAULT 0,
    orders         INTEGER NOT NULL DEFAULT 0,  -- placed and not cancelled
    spend          INTEGER NOT NULL DEFAULT 0,  -- net of refunds and cancellations
    first_order_at TEXT,
    last_order_at  TEXT
);
-- History, so that a segment can be evaluated at any past instant.
CREATE TABLE IF NOT EXISTS customer_versions (
    event_id    TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    valid_from  TEXT NOT NULL,
    attributes  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS customer_versions_by_customer ON customer_versions (customer_id, valid_from);
CREATE TABLE IF NOT EXISTS consent_changes (
    event_id    TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    channel     TEXT NOT NULL,
    changed_at  TEXT NOT NULL,
    granted     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS consent_changes_by_customer ON consent_changes (customer_id, channel, changed_at);
CREATE TABLE IF NOT EXISTS orders (
    order_id      TEXT PRIMARY KEY,
    customer_id   TEXT,
    amount        INTEGER NOT NULL,
    currency      TEXT NOT NULL,
    store_id      TEXT,
    sales_channel TEXT,
    ordered_at    TEXT NOT NULL,
    refunded      INTEGER NOT NULL DEFAULT 0,
    cancelled_at  TEXT
);
CREATE INDEX IF NOT EXISTS orders_by_customer ON orders (customer_id, ordered_at);
CREATE TABLE IF NOT EXISTS order_lines (
    order_id    TEXT NOT NULL,
    line        INTEGER NOT NULL,
    customer_id TEXT,
    product_id  TEXT NOT NULL,
    category    TEXT,
    quantity    INTEGER NOT NULL,
    amount      INTEGER NOT NULL,
    ordered_at  TEXT NOT NULL,
    PRIMARY KEY (order_id, line)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS order_refunds (
    event_id    TEXT PRIMARY KEY,
    order_id    TEXT NOT NULL,
    amount      INTEGER NOT NULL,
    refunded_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS segments (
    segment_id TEXT PRIMARY KEY,
    definition TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- Vouchers offered by promotions and autopilots: the frequency cap counts these.
CREATE TABLE IF NOT EXISTS offers (
    voucher_id  TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    channel     TEXT,
    source      TEXT NOT NULL,
    trigger_id  TEXT,
    offered_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS offers_by_customer ON offers (customer_id, offered_at);
CREATE INDEX IF NOT EXISTS offers_by_campaign ON offers (campaign_id);
CREATE INDEX IF NOT EXISTS offers_by_trigger ON offers (trigger_id);
-- A promotion's decisions per customer: held_out or skipped (voucher_id ''), or one row per
-- voucher sent (published) or decided but not sent (not_sent); a coupon book has several.
-- Resume passes over every customer with a row: nobody is sent anything twice.
CREATE TABLE IF NOT EXISTS audience (
    campaign_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    voucher_id  TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    reason      TEXT,
    decided_at  TEXT NOT NULL,
    PRIMARY KEY (campaign_id, customer_id, voucher_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS triggers (
    trigger_id  TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    kind        TEXT NOT NULL,
    matched_at  TEXT NOT NULL,
    status      TEXT NOT NULL,  -- pending, completed, held_out, failed
    reason      TEXT,
    voucher_id  TEXT,
    closed_at   TEXT
);
CREATE INDEX IF NOT EXISTS triggers_by_customer ON triggers (campaign_id, customer_id, matched_at);
CREATE INDEX IF NOT EXISTS triggers_by_status ON triggers (status, campaign_id);
CREATE TABLE IF NOT EXISTS deliveries (
    voucher_id  TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL,
    customer_id TEXT,
    channel     TEXT NOT NULL,
    status      TEXT NOT NULL,  -- delivered, failed or not_sent (the latest outcome)
    attempts    INTEGER NOT NULL,
    last_error  TEXT,
    updated_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fraud_reviews (
    flag_id     TEXT PRIMARY KEY,  -- the latest decision on each flag
    entity_type TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    decision    TEXT NOT NULL,
    reviewer    TEXT NOT NULL,
    note        TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    reviewed_at TEXT NOT NULL
) WITHOUT ROWID;
-- API keys, issued and revoked by ledger events; only a SHA-256 of each key is kept.
CREATE TABLE IF NOT EXISTS api_keys (
    key_id     TEXT PRIMARY KEY,
    key_hash   TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL,  -- server or client
    role       TEXT,  -- ADMIN, USER, MERCHANT, ANALYST, REVIEWER, VIEWER; none for client keys
    stores     TEXT NOT NULL,  -- JSON list; empty: every store
    name       TEXT NOT NULL,
    issued_at  TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS idempotency (
    idempotency_key TEXT PRIMARY KEY,
    request_hash    TEXT NOT NULL,
    event_id        TEXT NOT NULL
) WITHOUT ROWID;
"""

# Primary keys of the projection tables, for verify's row-by-row comparison.
PROJECTION_KEYS: dict[str, tuple[str, ...]] = {
    "main_campaigns": ("main_campaign_id",),
    "campaigns": ("campaign_id",),
    "vouchers": ("voucher_id",),
    "customer_campaigns": ("customer_id", "campaign_id"),
    "segment_members": ("customer_id", "segment_id"),
    "redemptions": ("redemption_id",),
    "holds": ("session_id",),
    "idempotency": ("idempotency_key",),
    "customers": ("customer_id",),
    "customer_versions": ("event_id",),
    "consent_changes": ("event_id",),
    "orders": ("order_id",),
    "order_lines": ("order_id", "line"),
    "order_refunds": ("event_id",),
    "segments": ("segment_id",),
    "settings": ("key",),
    "offers": ("voucher_id",),
    "audience": ("campaign_id", "customer_id", "voucher_id"),
    "triggers": ("trigger_id",),
    "deliveries": ("voucher_id",),
    "fraud_reviews": ("flag_id",),
    "api_keys": ("key_id",),
}

# From version N to N + 1: statements run in the transaction that opens an older ledger, before
# EVENTS_SCHEMA and PROJECTION_SCHEMA run (which create what is missing: tables, indexes). The
# projection is derived state, so a migration only reshapes it from what it already holds (or
# from the events); `promo ledger verify` checks the result like any other projection. New
# projection columns go last, so a migrated table and a new one have the same column order.
MIGRATIONS: dict[int, str] = {
    1: """
ALTER TABLE holds ADD COLUMN device_hash TEXT;
ALTER TABLE holds ADD COLUMN ip_hash TEXT;
UPDATE holds SET device_hash = e.device_hash, ip_hash = e.ip_hash FROM events AS e
WHERE e.event_type = 'validation_hold_created'
AND json_extract(e.payload, '$.session_id') = holds.session_id;
ALTER TABLE redemptions ADD COLUMN store_id TEXT;
UPDATE redemptions SET store_id = e.store_id FROM events AS e
WHERE e.event_type = 'redemption_succeeded' AND e.redemption_id = redemptions.redemption_id;
""",
    2: """
ALTER TABLE audience RENAME TO audience_v1;
CREATE TABLE audience (
    campaign_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    voucher_id  TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    reason      TEXT,
    decided_at  TEXT NOT NULL,
    PRIMARY KEY (campaign_id, customer_id, voucher_id)
) WITHOUT ROWID;
INSERT INTO audience
SELECT a.campaign_id, a.customer_id, coalesce(o.voucher_id, ''), a.outcome, a.reason, a.decided_at
FROM audience_v1 AS a
LEFT JOIN offers AS o
    ON a.outcome = 'published' AND o.source = 'promotion'
    AND o.campaign_id = a.campaign_id AND o.customer_id = a.customer_id;
DROP TABLE audience_v1;
ALTER TABLE redemptions ADD COLUMN rollback_cause TEXT;
UPDATE redemptions SET rollback_cause = rolled.cause
FROM (
    SELECT redemption_id, json_extract(payload, '$.cause') AS cause FROM events
    WHERE event_type = 'redemption_rolled_back'
) AS rolled
WHERE rolled.redemption_id = redemptions.redemption_id AND rolled.cause IS NOT NULL;
""",
}
