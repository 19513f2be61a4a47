"""Settings read from the environment (and an optional `.env`), validated once at start-up."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

from limits import parse
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.clock import is_zone, parse_clock

DEV_JWT_SECRET = "dev-insecure-secret-change-me-0123456789"
"""The development default; `Settings` refuses it outside development."""
DEFAULT_USER_RATE_LIMIT = "300/minute"
DEFAULT_RATE_LIMIT = "600/minute"
"""Requests per organization when `API_RATE_LIMIT` is unset (outside tests)."""


class Settings(BaseSettings):
    """All runtime configuration; one instance per process via `get_settings()`."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    environment: Literal["development", "test", "staging", "production"] = "development"
    log_level: str = "INFO"

    mongodb_uri: str = "mongodb://127.0.0.1:27017"
    mongodb_db: str = "campaigns"
    mongodb_timeout_ms: int = Field(default=5000, ge=100)

    jwt_secret: str = DEV_JWT_SECRET
    jwt_public_key: str | None = None
    jwt_algorithms: list[str] = ["HS256"]
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)
    dev_token_ttl_seconds: int = Field(default=8 * 3600, gt=0)

    default_phone_region: str = "US"
    send_window_start: str = "08:00"
    """Quiet hours for organizations that set none: messages go out from this local time of
    the recipient..."""
    send_window_end: str = "21:00"
    """...until this one (`24:00`: the end of the day; `00:00`-`24:00` sends at any hour)."""
    default_timezone: str = "America/New_York"
    """Quiet hours are kept in this zone for numbers whose zone the number does not tell,
    unless the organization set its own (`updateOrganizationSettings`)."""
    max_body_bytes: int = Field(default=5 * 1024 * 1024, gt=0)
    max_recipients: int = Field(default=50_000, gt=0)
    schedule_grace_seconds: int = Field(default=300, ge=0)
    idempotency_retention_seconds: int = Field(default=24 * 3600, ge=60)
    idempotency_purge_every_seconds: int = Field(default=600, ge=1)
    graphql_max_batch: int = Field(default=10, ge=1, le=100)
    """Operations one batched GraphQL request (a JSON array) may carry."""
    graphql_persisted_queries: int = Field(default=1000, ge=1)
    """Automatic persisted queries kept (least recently used go first)."""
    graphql_introspection: bool = True
    """Whether `__schema`/`__type` are answered; the IDE needs them, a locked-down production
    deployment may switch them off (`GRAPHQL_INTROSPECTION=false`)."""

    dispatch_in_process: bool = True
    """Whether API processes also send (the embedded default); `python -m worker` always does."""
    dispatch_provider: Literal["log", "simulated", "twilio"] = "log"
    dispatch_lease_seconds: float = Field(default=30.0, ge=1.0)
    dispatch_poll_seconds: float = Field(default=1.0, gt=0)
    dispatch_max_in_flight: int = Field(default=10, ge=1, le=1000)
    dispatch_rate_per_second: int = Field(default=10, ge=0)
    """Messages an organization may start per second across all dispatchers; 0: no limit."""
    frequency_cap_per_day: int = Field(default=3, ge=0, le=50)
    """Campaign messages per contact per rolling 24 hours, for organizations that set none;
    0: no cap (states' caps still apply)."""
    follow_up_minute_seconds: float = Field(default=60.0, gt=0)
    """How long a follow-up's `delayMinutes` minute lasts: shortened only to try cadences out
    in development and tests (refused elsewhere)."""
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """Where `python -m worker` serves its Prometheus metrics (loopback only); off when unset."""
    simulated_ledger: str = ".data/simulated-ledger.jsonl"
    simulated_latency_ms: float = Field(default=0.0, ge=0)
    simulated_failure_rate: float = Field(default=0.0, ge=0, le=1)
    simulated_reply_rate: float = Field(default=0.0, ge=0, le=1)
    """Share of messages the simulated provider accepts that get an inbound reply (development
    only: interested, not interested, HELP or STOP), through the inbound webhook's service."""
    simulated_reply_delay_s: float = Field(default=8.0, ge=0)
    """A simulated reply comes between a quarter of this and this long after its message."""

    api_rate_limit: str | None = None
    """Requests one organization may make per window to `/graphql` and `/api/*`, in the
    `limits` notation (`600/minute`, `100/10 seconds`); empty turns limits off. Unset: 600 per
    minute, and off in the test environment."""
    api_user_rate_limit: str | None = None
    """The same for one user of an organization, so one rep's script cannot spend the whole
    organization's budget. Unset: 300 per minute, and off in the test environment."""
    api_write_cost: int = Field(default=5, ge=1, le=100)
    """What a write costs from the budgets, reads costing 1: a REST POST, PUT, PATCH or DELETE,
    and a GraphQL mutation (creation and sending are what a flood must not multiply)."""
    api_refusal_pause_seconds: float = Field(default=1.0, ge=0, le=10)
    """How long a 429 is held before it is sent (at most until the budget has room again), so a
    client that ignores `Retry-After` and asks again at once slows down; 0 answers at once."""
    api_refusal_pause_most: int = Field(default=1000, ge=0, le=100_000)
    """How many refusals may be held at once; past that they are answered at once."""
    api_limit_sync_seconds: float = Field(default=0.25, gt=0, le=60)
    """How often an API process serving requests shares its request counts with the others
    through the database (and reads theirs); a key spending its budget fast syncs sooner."""

    cors_allowed_origins: Annotated[list[str], NoDecode] = []
    """Browser origins allowed to call `/graphql` and `/api/*` from another site
    (`https://app.example.com,https://admin.example.com`); in development, any
    `http://localhost:<port>` and `http://127.0.0.1:<port>` is allowed as well."""

    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    """Signs Twilio's webhooks; they are refused (403) while it is unset."""
    twilio_messaging_service_sid: str | None = None
    twilio_from_number: str | None = None
    """The sender when no Messaging Service is set (E.164)."""
    twilio_public_url: str | None = None
    """This service's address as Twilio reaches it (`https://sms.example.com`, no trailing
    slash): status callbacks point there, and webhook signatures are checked against it, since
    behind a proxy the URL the app sees is not the one Twilio signed."""
    twilio_api_base: str = "https://api.twilio.com"
    """Only tests change it (to a local server that plays Twilio's API)."""
    twilio_timeout_seconds: float = Field(default=10.0, gt=0)

    @property
    def request_limit(self) -> str | None:
        """The request limit in force (`api_rate_limit`, or the environment's default)."""
        if self.api_rate_limit is None:
            return None if self.environment == "test" else DEFAULT_RATE_LIMIT
        return self.api_rate_limit.strip() or None

    @property
    def user_request_limit(self) -> str | None:
        """The per-user limit in force (`api_user_rate_limit`, or the environment's default)."""
        if self.api_user_rate_limit is None:
            return None if self.environment == "test" else DEFAULT_USER_RATE_LIMIT
        return self.api_user_rate_limit.strip() or None

    @field_validator("api_rate_limit", "api_user_rate_limit")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if value and value.strip():
            try:
                parse(value.strip())
            except ValueError:
                raise ValueError(
                    f"API_RATE_LIMIT '{value}' is not a limit such as 600/minute"
                ) from None
        return value

    @field_validator("cors_allowed_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        """Comma-separated in the environment; each an origin (scheme, host, port), never `*`:
        tokens are credentials, and a wildcard would hand them to any site."""
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list):
            return items
        origins = [str(item).strip().rstrip("/") for item in items if str(item).strip()]
        for origin in origins:
            scheme, sep, rest = origin.partition("://")
            if origin == "*" or not sep or scheme not in ("http", "https") or not rest:
                raise ValueError(
                    f"CORS_ALLOWED_ORIGINS: {origin!r} is not an origin like https://app.example.com"
                )
            if "/" in rest:
                raise ValueError(
                    f"CORS_ALLOWED_ORIGINS: {origin!r} has a path; give the origin only"
                )
        return origins

    @model_validator(mode="after")
    def _refuse_insecure_defaults(self) -> Settings:
        """Fails fast: a production process signing with a published secret is an open door."""
        if "none" in {a.lower() for a in self.jwt_algorithms}:
            raise ValueError("JWT_ALGORITHMS must not contain 'none'")
        asymmetric = any(a.startswith(("RS", "ES", "PS", "Ed")) for a in self.jwt_algorithms)
        if asymmetric and not self.jwt_public_key:
            raise ValueError("JWT_PUBLIC_KEY is required for asymmetric JWT_ALGORITHMS")
        if self.environment not in ("development", "test") and not asymmetric:
            if self.jwt_secret == DEV_JWT_SECRET:
                raise ValueError(
                    f"JWT_SECRET is the development default; set a real secret for "
                    f"ENVIRONMENT={self.environment}"
                )
            if len(self.jwt_secret) < 32:
                raise ValueError("JWT_SECRET must be at least 32 characters outside development")

        if self.simulated_reply_rate and self.environment not in ("development", "test"):
            raise ValueError("SIMULATED_REPLY_RATE is for development; leave it 0 elsewhere")
        if self.environment not in ("development", "test") and self.follow_up_minute_seconds != 60:
            raise ValueError("FOLLOW_UP_MINUTE_SECONDS is for development and tests only")

        start = parse_clock(self.send_window_start)
        end = parse_clock(self.send_window_end, end=True)
        if start is None or end is None or start == end:
            raise ValueError(
                "SEND_WINDOW_START and SEND_WINDOW_END must be different HH:MM times "
                "(24:00 allowed as the end)"
            )
        if not is_zone(self.default_timezone):
            raise ValueError(f"DEFAULT_TIMEZONE={self.default_timezone!r} is no IANA zone")
        if self.dispatch_provider == "twilio":
            missing = [
                name
                for name, value in (
                    ("TWILIO_ACCOUNT_SID", self.twilio_account_sid),
                    ("TWILIO_AUTH_TOKEN", self.twilio_auth_token),
                    ("TWILIO_PUBLIC_URL", self.twilio_public_url),
                    (
                        "TWILIO_MESSAGING_SERVICE_SID or TWILIO_FROM_NUMBER",
                        self.twilio_messaging_service_sid or self.twilio_from_number,
                    ),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"DISPATCH_PROVIDER=twilio needs {', '.join(missing)}")
        return self

    @property
    def verification_key(self) -> str:
        """Returns the key tokens are verified with: the public key when one is configured."""
        return self.jwt_public_key or self.jwt_secret


@lru_cache
def get_settings() -> Settings:
    """Returns the process-wide settings."""
    return Settings()
