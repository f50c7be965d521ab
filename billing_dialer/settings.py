"""Billing Dialer settings.

Every value comes from the environment (or an optional `.env` file) and has a safe local
default, so a fresh clone runs on SQLite against the sandbox vendors with no configuration.
`.env.example` lists every variable; README.md explains each one.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"
VAR_DIR.mkdir(exist_ok=True)

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Local development is the default (as in healthchecks); production sets DEBUG=False.
DEBUG = env.bool("DEBUG", default=True)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise environ.ImproperlyConfigured("SECRET_KEY must be set when DEBUG is False.")
    SECRET_KEY = "dev-only-insecure-key-never-use-in-production-9f3b7c1e"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "django_q",
    "simple_history",
    "cadences",
    "campaigns",
    "integrations.sandbox",
    "access",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "billing_dialer.middleware.SecurityHeadersMiddleware",
]

ROOT_URLCONF = "billing_dialer.urls"
WSGI_APPLICATION = "billing_dialer.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "billing_dialer.context_processors.sandbox_banner",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# Default: an embedded SQLite file under var/, in WAL mode with a busy timeout so the web
# process and the qcluster workers can share it. Production: DATABASE_URL=postgres://...
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'billing_dialer.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
        }
    )
    # Tests use an in-memory database unless a test run with real processes names a file.
    if env.str("SQLITE_TEST_NAME", default=""):
        DATABASES["default"]["TEST"] = {"NAME": env.str("SQLITE_TEST_NAME")}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="America/New_York")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Where `make build` (collectstatic) writes the hashed files whitenoise serves in production.
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG
MEDIA_ROOT = VAR_DIR / "media"

LOGIN_URL = "/admin/login/"
LOGIN_REDIRECT_URL = "/dashboard/"
# Sign-in throttling (access app): failures counted in the database so every worker agrees.
# An address gets a looser limit than a username because a whole office may share one.
LOGIN_THROTTLE_MAX_FAILURES = env.int("LOGIN_THROTTLE_MAX_FAILURES", default=5)
LOGIN_THROTTLE_MAX_FAILURES_PER_IP = env.int("LOGIN_THROTTLE_MAX_FAILURES_PER_IP", default=20)
LOGIN_THROTTLE_WINDOW_MINUTES = env.int("LOGIN_THROTTLE_WINDOW_MINUTES", default=15)

# --- Security (check --deploy clean with the production variables of README) --------------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=SECURE_SSL_REDIRECT)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=SECURE_SSL_REDIRECT)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if SECURE_SSL_REDIRECT else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=SECURE_HSTS_SECONDS > 0)
# A proxy's headers are trusted only when there is one: gunicorn facing clients directly would let
# every client choose its own address (X-Forwarded-For, which sign-in throttling counts by) and
# scheme (X-Forwarded-Proto). BEHIND_PROXY_HOPS is how many proxies append to X-Forwarded-For
# before the request reaches gunicorn; the address is the entry the outermost of them wrote.
BEHIND_PROXY = env.bool("BEHIND_PROXY", default=False)
BEHIND_PROXY_HOPS = env.int("BEHIND_PROXY_HOPS", default=1)
if BEHIND_PROXY_HOPS < 1:
    raise environ.ImproperlyConfigured("BEHIND_PROXY_HOPS must be at least 1 (the proxy in front of gunicorn).")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_PROXY else None
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
# Scripts come only from our own static files (page data travels in json_script blocks, which
# are not run): no 'unsafe-inline' for scripts, so an injected <script> or javascript: link does
# nothing. Inline styles stay allowed — the admin and the banner use style attributes.
CONTENT_SECURITY_POLICY = env.str(
    "CONTENT_SECURITY_POLICY",
    default=(
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; object-src 'none'; connect-src 'self'; frame-ancestors 'none'; "
        "base-uri 'self'; form-action 'self'"
    ),
)

# --- Background work: django-q2 ----------------------------------------------------------
# ORM broker by default (no extra service); Redis when REDIS_URL is set. `timeout` is shorter
# than `retry` so a task is never handed to a second worker while the first still runs it;
# `max_attempts` is finite so a poison task stops; `catch_up` is off so a stopped cluster does
# not replay every missed schedule when it comes back.
REDIS_URL = env.str("REDIS_URL", default="")
Q_CLUSTER: dict[str, object] = {
    "name": "billing_dialer",
    "workers": env.int("Q_WORKERS", default=4),
    "recycle": 500,
    "timeout": env.int("Q_TIMEOUT", default=300),
    "retry": env.int("Q_RETRY", default=360),
    "max_attempts": 3,
    "catch_up": False,
    "ack_failures": True,
    "save_limit": 1000,
    "queue_limit": 50,
    "label": "Background tasks",
    "poll": 0.5,
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- REST API ----------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: DRF answers a missing or bad credential 401 only when the first
    # authenticator can name a challenge (WWW-Authenticate: Token); the session cannot, and
    # would turn every 401 into a 403. Requests without a token still use the session.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "campaigns.api.parsers.StrictJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    # Lists the error answers (401, 403, 404, 400, 415) beside each operation's success.
    "DEFAULT_SCHEMA_CLASS": "campaigns.api.schema.ApiSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Billing Dialer API",
    "VERSION": "1.0.0",
    # The docs page's Swagger UI is served from our static files, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The schema lists every endpoint and field: staff only, like the API it describes.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # The schema describes the API, not the document itself.
    "SERVE_INCLUDE_SCHEMA": False,
    # Three models have a "status" field with different choices; name each enum after its model.
    "ENUM_NAME_OVERRIDES": {
        "CampaignStatusEnum": "campaigns.models.Campaign.Status",
        "QueueItemStatusEnum": "campaigns.models.QueueItem.Status",
        "FollowUpTaskStatusEnum": "campaigns.models.FollowUpTask.Status",
        "AccountStatusEnum": "campaigns.models.Account.Status",
    },
}

# --- Public base URL (where vendors deliver webhooks) -------------------------------------
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000")

# --- Retell (AI voice agent "Grace") -----------------------------------------------------
# Live when RETELL_API_KEY is set; otherwise the local simulator under /sandbox/retell/.
RETELL_API_KEY = env.str("RETELL_API_KEY", default="")
RETELL_AGENT_ID = env.str("RETELL_AGENT_ID", default="agent_grace_sandbox")
RETELL_FROM_NUMBERS = env.list("RETELL_FROM_NUMBERS", default=["+12125550100", "+13125550100", "+14155550100"])
RETELL_BASE_URL = env.str("RETELL_BASE_URL", default="")
RETELL_SANDBOX_KEY = "sandbox-retell-key"

# --- HeyMarket (SMS) ---------------------------------------------------------------------
HEYMARKET_API_TOKEN = env.str("HEYMARKET_API_TOKEN", default="")
HEYMARKET_CREATOR_ID = env.str("HEYMARKET_CREATOR_ID", default="1")
# No default: until it is set, no webhook is accepted as HeyMarket's (the simulator uses a token
# of its own, accepted only while HeyMarket is simulated).
HEYMARKET_WEBHOOK_TOKEN = env.str("HEYMARKET_WEBHOOK_TOKEN", default="")
HEYMARKET_BASE_URL = env.str("HEYMARKET_BASE_URL", default="")

# --- Dialflow (live-agent availability) --------------------------------------------------
DIALFLOW_URL = env.str("DIALFLOW_URL", default="")
DIALFLOW_API_KEY = env.str("DIALFLOW_API_KEY", default="")

# --- Warehouse (Databricks, or any DB-API database by URL) -------------------------------
DATABRICKS_SERVER_HOSTNAME = env.str("DATABRICKS_SERVER_HOSTNAME", default="")
DATABRICKS_HTTP_PATH = env.str("DATABRICKS_HTTP_PATH", default="")
DATABRICKS_TOKEN = env.str("DATABRICKS_TOKEN", default="")
WAREHOUSE_URL = env.str("WAREHOUSE_URL", default=f"sqlite:///{VAR_DIR / 'warehouse.sqlite3'}")
# Stored queries run read-only with a statement timeout: below the task timeout at every run, so
# the warehouse cancels a runaway query before the worker is killed; short when the admin checks
# a query on save, so a slow one cannot hold a web worker (gunicorn's own timeout is 30 s).
WAREHOUSE_QUERY_TIMEOUT_SECONDS = env.float("WAREHOUSE_QUERY_TIMEOUT_SECONDS", default=240.0)
WAREHOUSE_CHECK_TIMEOUT_SECONDS = env.float("WAREHOUSE_CHECK_TIMEOUT_SECONDS", default=10.0)

# --- E-mail (follow-up e-mails: payment links and promise summaries; Django's EMAIL_* settings)
# With no EMAIL_HOST, a development machine prints e-mails to the console instead of sending them.
EMAIL_HOST = env.str("EMAIL_HOST", default="")
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.console.EmailBackend"
    if DEBUG and not EMAIL_HOST
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = EMAIL_HOST or "localhost"
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="billing@localhost")

# --- Sandbox -----------------------------------------------------------------------------
# The simulators are mounted (under /sandbox/) only when this is on, and only for vendors without
# credentials. Off in production: the sandbox keys are in the source.
SANDBOX_ENABLED = env.bool("SANDBOX_ENABLED", default=DEBUG)
# Owner alerts (apprise notification URLs, set per team and person in the admin): in sandbox mode
# they are recorded (admin: Sandbox owner alerts) instead of sent; so is an alert for which no
# URL is configured.
NOTIFY_SANDBOX = env.bool("NOTIFY_SANDBOX", default=SANDBOX_ENABLED)
# Where the sandbox simulators deliver their webhooks (this app). Tests point it at their
# live server.
SANDBOX_APP_URL = env.str("SANDBOX_APP_URL", default=PUBLIC_BASE_URL)
# The web process delivers the simulators' due webhooks from a background thread (never under
# the test environment, where tests call sandbox_dispatch_due themselves).
SANDBOX_AUTO_DISPATCH = env.bool("SANDBOX_AUTO_DISPATCH", default=True)
RECONCILED_FILE_DIR = env.path("RECONCILED_FILE_DIR", default=VAR_DIR / "reconciled")
# Every payment link the portal sends is its own signed short link, `/pay/<token>/` (the page
# that records the open and redirects to a live Checkout Session); a site may put a short domain
# of its own in front of it.
PAYMENT_LINK_TEMPLATE = env.str("PAYMENT_LINK_TEMPLATE", default=PUBLIC_BASE_URL.rstrip("/") + "/pay/{token}/")
# How long a signed payment-link token stays valid (a text may be read days after it is sent).
PAYMENT_LINK_MAX_AGE_DAYS = env.int("PAYMENT_LINK_MAX_AGE_DAYS", default=30)

# --- Identity checks: dates of birth and SSN last fours are kept only as HMAC-SHA256 hashes ---
# with this key. Set it in production: a key of its own means rotating SECRET_KEY does not make
# the hashes unusable. Unset, it is derived from SECRET_KEY (never SECRET_KEY itself). Changing
# it makes the stored hashes unusable until the next queue load writes them again.
IDENTITY_HASH_KEY = env.str("IDENTITY_HASH_KEY", default="") or hmac.new(
    SECRET_KEY.encode(), b"billing_dialer.identity_hash_key", hashlib.sha256
).hexdigest()

# --- SFTP (partners' intake files in, the reconciled file out) ------------------------------
# The passwords and private keys of the SFTP servers configured in the admin are stored
# encrypted (Fernet) with this key. Set it in production, so rotating SECRET_KEY does not lock the
# stored credentials away; unset, it is derived from SECRET_KEY. Changing it means entering each
# server's password or key again.
SFTP_SECRET_KEY = env.str("SFTP_SECRET_KEY", default="") or hmac.new(
    SECRET_KEY.encode(), b"billing_dialer.sftp_secret_key", hashlib.sha256
).hexdigest()

# --- Stripe (Checkout Sessions behind the payment links, payment status by webhook) ---------
# Live when STRIPE_API_KEY is set; otherwise the local simulator under /sandbox/stripe/ (only
# while SANDBOX_ENABLED). The webhook endpoint is PUBLIC_BASE_URL + /webhooks/stripe/.
STRIPE_API_KEY = env.str("STRIPE_API_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_SUCCESS_URL = env.str("STRIPE_SUCCESS_URL", default=PUBLIC_BASE_URL.rstrip("/") + "/pay/thanks/")
STRIPE_CANCEL_URL = env.str("STRIPE_CANCEL_URL", default=PUBLIC_BASE_URL.rstrip("/") + "/pay/cancelled/")
STRIPE_CURRENCY = env.str("STRIPE_CURRENCY", default="usd")
# A Checkout Session lives 30 minutes to 24 hours (Stripe's bounds); the link outlives it and
# makes a new one when it has expired.
STRIPE_SESSION_MINUTES = env.int("STRIPE_SESSION_MINUTES", default=24 * 60)
STRIPE_SANDBOX_KEY = "sk_test_sandbox"
STRIPE_SANDBOX_WEBHOOK_SECRET = "whsec_sandbox"
# A payment this close below a promise's amount still keeps it (rounding, a fee the client
# deducted); less than that keeps it in part.
PROMISE_KEPT_TOLERANCE = env.str("PROMISE_KEPT_TOLERANCE", default="1.00")
# What one text costs, for the cost per dollar recovered (calls carry their own cost from Retell).
SMS_PRICE = env.str("SMS_PRICE", default="0.0079")

# --- Logging: structured (JSON, or readable lines at a terminal) with phone numbers masked ---
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# "auto": readable lines when stderr is a terminal, JSON lines otherwise; "text" or "json" to choose.
LOG_FORMAT = env.str("LOG_FORMAT", default="auto")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"mask_pii": {"()": "billing_dialer.logging.MaskPiiFilter"}},
    "handlers": {
        "console": {"()": "billing_dialer.logging.ConsoleHandler", "log_format": LOG_FORMAT, "filters": ["mask_pii"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # sqlglot warns when it keeps a statement it cannot parse as text; the refusal says so.
        "sqlglot": {"level": "ERROR"},
        # django-q2 logs under "django-q" (a line per task enqueued and processed at INFO).
        "django-q": {"level": env.str("Q_LOG_LEVEL", default="WARNING")},
    },
}
