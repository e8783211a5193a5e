"""Settings for Retainers: one module, configured by environment variables.

Every variable has a default that works on a developer's machine; production
must set SECRET_KEY, DEBUG=0, EMAIL_URL, ALLOWED_HOSTS and an https SITE_URL.
"""

import ipaddress
import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def mailer_from_url(url: str) -> dict[str, object]:
    """Translate EMAIL_URL (smtp://user:pass@host:port, smtp+tls://, smtps://, console://, locmem://) to a MAILERS entry."""
    parts = urlsplit(url)
    backends = {
        "smtp": "django.core.mail.backends.smtp.EmailBackend",
        "smtp+tls": "django.core.mail.backends.smtp.EmailBackend",
        "smtps": "django.core.mail.backends.smtp.EmailBackend",
        "console": "retainers.console_email.EmailBackend",  # short readable blocks, not MIME
        "locmem": "django.core.mail.backends.locmem.EmailBackend",
    }
    if parts.scheme not in backends:
        raise ImproperlyConfigured(f"EMAIL_URL scheme {parts.scheme!r} is not one of {', '.join(backends)}")
    if not parts.scheme.startswith("smtp"):
        return {"BACKEND": backends[parts.scheme]}
    options = parse_qs(parts.query)
    return {
        "BACKEND": backends[parts.scheme],
        "OPTIONS": {
            "host": parts.hostname or "127.0.0.1",
            "port": parts.port or (465 if parts.scheme == "smtps" else 25),
            "username": unquote(parts.username or ""),
            "password": unquote(parts.password or ""),
            "use_tls": parts.scheme == "smtp+tls",
            "use_ssl": parts.scheme == "smtps",
            "timeout": int(options.get("timeout", ["10"])[0]),
        },
    }


def storage_from_url(url: str) -> dict[str, object]:
    """Translate STORAGE_URL to a STORAGES["default"] entry.

    Empty: the local filesystem under MEDIA_ROOT. `file:///path`: the local filesystem under that
    path. `s3://bucket?endpoint_url=...&region=...&addressing_style=path&prefix=...`: any S3-API
    object store; credentials come from the standard AWS variables (AWS_ACCESS_KEY_ID, ...).
    """
    parts = urlsplit(url)
    if not url:
        # No location option: FileSystemStorage follows MEDIA_ROOT (and a test's override of it).
        return {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    if parts.scheme == "file":
        location = unquote(parts.path)
        if not location.startswith("/") or parts.netloc:
            raise ImproperlyConfigured("STORAGE_URL file:// needs an absolute path (file:///var/media)")
        return {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": location}}
    if parts.scheme != "s3":
        raise ImproperlyConfigured(f"STORAGE_URL scheme {parts.scheme!r} is not one of file, s3")
    if not parts.hostname:
        raise ImproperlyConfigured("STORAGE_URL s3:// needs a bucket name (s3://bucket)")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    unknown = set(query) - {"endpoint_url", "region", "addressing_style", "prefix"}
    if unknown:
        raise ImproperlyConfigured(f"STORAGE_URL has unknown options: {', '.join(sorted(unknown))}")
    options: dict[str, object] = {
        "bucket_name": parts.netloc,
        # Every file is private (PDFs, attachments): downloads stream through our views, which check
        # permissions, so objects get no public ACL and no URLs are handed out.
        "default_acl": None,
        "querystring_auth": True,
        # Names must never be overwritten (a re-rendered PDF, two logos named alike): Django picks a
        # free name as it does on disk.
        "file_overwrite": False,
    }
    if "endpoint_url" in query:
        options["endpoint_url"] = query["endpoint_url"]
    if "region" in query:
        options["region_name"] = query["region"]
    if "addressing_style" in query:
        options["addressing_style"] = query["addressing_style"]
    if "prefix" in query:
        options["location"] = query["prefix"].strip("/")
    return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}


# --- Core -----------------------------------------------------------------

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "insecure-local-development-key-not-for-production-use-0123456789"

SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
_site = urlsplit(SITE_URL)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", f"127.0.0.1,localhost,{_site.hostname}")
CSRF_TRUSTED_ORIGINS = [f"{_site.scheme}://{_site.netloc}"]
HTTPS = _site.scheme == "https"

INSTALLED_APPS = [
    "retainers",
    "clients",
    "delivery",
    "billing",
    "renewals",
    "communication",
    "portal",
    "dashboard",
    "demo",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",  # delivery's exclusion constraint on bookings
    "django.forms",
    "django_htmx",
    "allauth",
    "allauth.account",
    "allauth.mfa",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "retainers.tenancy.TenancyMiddleware",  # the second wall: no tenant's rows until a view picks its workspace
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "retainers.errors.ErrorPagesMiddleware",
    "retainers.audit.AuditMiddleware",
]

if not DEBUG:
    # Production serves collected static files itself; in development runserver does.
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "retainers.urls"
WSGI_APPLICATION = "retainers.wsgi.application"
AUTH_USER_MODEL = "retainers.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "retainers.context_processors.navigation",
            ],
        },
    },
]
FORM_RENDERER = "retainers.forms.FormRenderer"

# --- Data stores ------------------------------------------------------------

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", "postgres://retainers@127.0.0.1:5432/retainers"),
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL")

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "retainers",
    }
}
# How long a rendered page part (dashboard rows, portal cards) stays in the cache. Parts are
# keyed by the workspace's data version, so this bounds memory, not staleness; 0 turns it off.
PAGE_CACHE_SECONDS = int(os.environ.get("PAGE_CACHE_SECONDS", "600"))

# --- Celery (no result backend; the beat schedule lives here, not in the database) ---

# Its own variable, defaulting to REDIS_URL: test runs give every process a broker of its own
# (tests/conftest.py), so nothing they queue reaches a developer's worker. (Celery itself also
# prefers this environment variable to the setting.)
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or REDIS_URL
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 15 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 14 * 60
CELERY_TIMEZONE = "UTC"
# The outbox's sends go to a queue of their own (retainers/queues.py), so that emails are not
# queued behind the billing run's delivery batches; empty puts them on the default queue.
CELERY_TASK_ROUTES = ("retainers.queues.route_task",)
OUTBOX_QUEUE = os.environ.get("OUTBOX_QUEUE", "email")
CELERY_BEAT_SCHEDULE = {
    "send-due-emails": {
        "task": "retainers.tasks.send_due_emails",
        "schedule": crontab(),  # every minute
    },
    "outbox-prune": {
        "task": "retainers.tasks.prune_outbox",
        "schedule": crontab(hour=3, minute=50),  # daily: sent emails past OUTBOX_RETENTION_DAYS
    },
    "billing-run": {
        "task": "billing.tasks.run_billing",
        "schedule": crontab(minute=5),  # hourly: each workspace bills as of its own local date
    },
    "invoice-delivery-sweep": {
        "task": "billing.tasks.sweep_deliveries",
        "schedule": crontab(minute="3-59/10"),  # invoices, PDFs and receipts a lost task left behind
    },
    "dunning": {
        "task": "billing.tasks.run_dunning",
        # Hourly; each workspace is processed once per local day, after DAILY_JOBS_LOCAL_HOUR.
        "schedule": crontab(minute=20),
    },
    "renewals": {
        "task": "renewals.tasks.run_renewals",
        "schedule": crontab(minute=40),  # hourly, like dunning: once per workspace and local day
    },
    "reminders": {
        "task": "communication.tasks.send_reminders",
        # Due tasks, check-ins, low-balance alerts, daily digests, reminders before bookings and nudges.
        "schedule": crontab(minute="*/15"),
    },
    "calendar-sync": {
        "task": "delivery.tasks.sync_calendars",
        "schedule": crontab(minute="7-59/15"),  # CalDAV: read busy times, write bookings (one task per calendar)
    },
}

# The local hour (0-23, in each workspace's time zone) after which the daily jobs, dunning and
# renewals, process a workspace; beat runs them hourly and each workspace once per local day.
DAILY_JOBS_LOCAL_HOUR = int(os.environ.get("DAILY_JOBS_LOCAL_HOUR", "8"))
if not 0 <= DAILY_JOBS_LOCAL_HOUR <= 23:
    raise ImproperlyConfigured(f"DAILY_JOBS_LOCAL_HOUR must be an hour from 0 to 23, not {DAILY_JOBS_LOCAL_HOUR}.")

# --- Calendars (delivery's bookings) ---------------------------------------------

# Fernet keys (comma-separated, newest first) sealing CalDAV app passwords and ICS feed secrets at
# rest. Unset: one key derived from SECRET_KEY. To rotate, put the new key first and keep the old.
CALENDAR_ENCRYPTION_KEYS = env_list("CALENDAR_ENCRYPTION_KEY", "")
CALDAV_TIMEOUT_SECONDS = float(os.environ.get("CALDAV_TIMEOUT_SECONDS", "15"))
# Members type CalDAV addresses the server then connects to: refuse loopback and private networks
# (the cloud metadata endpoint, internal services) unless this is on (development, tests).
CALDAV_ALLOW_PRIVATE_HOSTS = env_bool("CALDAV_ALLOW_PRIVATE_HOSTS", DEBUG)

# --- Auth: django-allauth ---------------------------------------------------

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
ACCOUNT_ADAPTER = "retainers.adapters.AccountAdapter"
ACCOUNT_FORMS = {"signup": "retainers.forms.SignupForm"}
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGIN_BY_CODE_ENABLED = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = ""
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"
ACCOUNT_SESSION_REMEMBER = None
ACCOUNT_EMAIL_NOTIFICATIONS = True  # "your password was changed" and the like, to the account's address
# Rate limits stay at allauth's defaults (on); they are counted in the Redis cache above.

# Rate limits beyond sign-in (retainers.ratelimits), counted in the same cache: "amount/period/per"
# rules, comma-separated, where per is ip, user (signed in) or key (the object: an invoice, a
# client); a request over any rule gets the 429 page. RATE_LIMITS_ENABLED=0 turns them all off.
RATE_LIMITS_ENABLED = env_bool("RATE_LIMITS_ENABLED", True)
RATE_LIMITS = {
    "pay": "30/m/ip",  # the public pay page, its PDF and checkout
    "pay_link_request": "3/h/key,10/h/ip",  # "email me a new link" from an expired pay link, per invoice
    "pay_link_send": "5/h/key",  # a member emails a new pay link, per invoice
    "statement_pdf": "10/m/user,30/m/ip",  # rendered on each request
    "message_send": "10/m/user,100/h/user,30/m/ip",  # both sides; attachments come with messages
    "attachment_download": "60/m/user,120/m/ip",
    "inbound_email": "120/m/ip",  # the inbound-mail webhook (issue 14): a provider posting a busy hour stays below
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Retainers"

# --- Email ------------------------------------------------------------------

EMAIL_URL = os.environ.get("EMAIL_URL", "console://" if DEBUG else "")
if not EMAIL_URL:
    raise ImproperlyConfigured("EMAIL_URL must be set when DEBUG is off (e.g. smtp+tls://user:pass@host:587)")
MAILERS = {"default": mailer_from_url(EMAIL_URL)}
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Retainers <noreply@retainers.localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
OUTBOX_MAX_ATTEMPTS = 8
# Sent emails older than this many days lose their bodies (rows a job's idempotency key needs stay
# as a minimal record; the rest are deleted) by the daily outbox-prune beat task.
OUTBOX_RETENTION_DAYS = int(os.environ.get("OUTBOX_RETENTION_DAYS", "90"))


def inbound_domain(site_host: str | None) -> str:
    """Reply addresses' domain by default: SITE_URL's host, or `localhost` for a loopback or bare-IP site."""
    host = (site_host or "").lower()
    try:
        ipaddress.ip_address(host)
        return "localhost"  # 127.0.0.1 in development: no one can mail an IP address's domain
    except ValueError:
        return host or "localhost"


# Replies to client emails come back to reply+<token>@INBOUND_EMAIL_DOMAIN (communication.inbound),
# through `manage.py receive_email` (an MTA pipe) or POST /inbound/email/ with this secret (a
# provider's webhook; empty turns the endpoint off).
INBOUND_EMAIL_DOMAIN = os.environ.get("INBOUND_EMAIL_DOMAIN", "").strip().lower() or inbound_domain(_site.hostname)
INBOUND_EMAIL_SECRET = os.environ.get("INBOUND_EMAIL_SECRET", "")

# --- Stripe (used by billing; empty means "no Stripe": invoices are paid by hand) ---

STRIPE_SECRET_KEY = os.environ.get("STRIPE_SECRET_KEY", "")
STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET", "")
STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "")
STRIPE_TIMEOUT_SECONDS = float(os.environ.get("STRIPE_TIMEOUT_SECONDS", "20"))  # per call; Celery retries
# Days a pay link (in invoice PDFs and emails) opens the pay page; an older one offers to email a new link.
PAY_LINK_DAYS = int(os.environ.get("PAY_LINK_DAYS", "60"))
# Days an emailed "approve overage" link works (delivery.approvals); after that the portal still does.
OVERAGE_LINK_MAX_AGE_DAYS = int(os.environ.get("OVERAGE_LINK_MAX_AGE_DAYS", "14"))

# --- Internationalisation and time ------------------------------------------

LANGUAGE_CODE = "en-us"
USE_I18N = True
TIME_ZONE = "UTC"
USE_TZ = True

# --- Static and media files ------------------------------------------------

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "var" / "media"))
# Where invoice PDFs, logos and attachments live: the local filesystem by default (one host), an
# S3-API object store for more than one host (see storage_from_url above).
STORAGE_URL = os.environ.get("STORAGE_URL", "").strip()
STORAGES = {
    "default": storage_from_url(STORAGE_URL),
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Security -----------------------------------------------------------------

SECURE_CSP: dict[str, list[str]] = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "object-src": [CSP.NONE],
}
CSRF_FAILURE_VIEW = "retainers.errors.csrf_failure"  # our page, not Django's (inline style, DEBUG advice)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS and env_bool("SECURE_SSL_REDIRECT", True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", 31536000 if HTTPS else 0))
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
