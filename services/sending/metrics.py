"""Operators' counters for sending, in Prometheus' text format (`GET /metrics`).

Each process counts what it did; a Prometheus server scrapes every API process at `/metrics`
and every worker at `WORKER_METRICS_PORT`, and sums. Counting lives here, not in the
dispatcher's logic, so the names are declared once.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter(
    "campaign_messages_total",
    "Recipients the dispatcher finished, by provider and outcome (sent, failed, skipped, unknown)",
    ["provider", "outcome"],
)
SEND_SECONDS = Histogram(
    "campaign_send_seconds",
    "Time a provider took to accept or refuse one message, retries included",
    ["provider"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCHES_CLAIMED = Counter("campaign_batches_claimed_total", "Batch leases this process won")
LEASE_TAKEOVERS = Counter(
    "campaign_lease_takeovers_total", "Batches claimed after another holder's lease expired"
)
BATCHES_DONE = Counter("campaign_batches_done_total", "Batches this process finished")
WEBHOOKS = Counter(
    "campaign_webhook_events_total",
    "Provider webhooks answered, by kind (status, inbound) and outcome (applied, duplicate, "
    "stale, ignored, unknown_recipient, stored, unrouted, opted_out, opted_in, help, "
    "bad_signature)",
    ["kind", "outcome"],
)
DUE_RECIPIENTS = Gauge(
    "campaign_due_recipients",
    "Recipients of sending campaigns not finished yet, as of this dispatcher's last pass (lag)",
)
WAITING_RECIPIENTS = Gauge(
    "campaign_quiet_hours_waiting",
    "Recipients of sending campaigns waiting for quiet hours to end where they are, as of this "
    "dispatcher's last pass (not counted in campaign_due_recipients)",
)
