"""The one settings module: everything configurable comes from environment variables.

SCRM_ENV=development (the default) gives safe local defaults; SCRM_ENV=production insists on
real secrets. DATABASE_URL and REDIS_URL are required: `make` and `python -m scrm.embedded`
provide embedded servers when they are not set.
"""

import re
import secrets
import warnings
from pathlib import Path

from celery.schedules import crontab
from django.utils.translation import gettext_lazy as _

from scrm.config import (
    ConfigError,
    database_from_url,
    env_bool,
    env_int,
    env_list,
    env_str,
    redis_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
# Local state that must not be in the repo: embedded servers' data, the development key.
DATA_DIR = Path(env_str("SCRM_DATA_DIR") or BASE_DIR / ".data")

SCRM_ENV = env_str("SCRM_ENV", "development")
if SCRM_ENV not in {"development", "production"}:
    raise ConfigError(f"SCRM_ENV={SCRM_ENV!r} is unknown; use development or production")
PRODUCTION = SCRM_ENV == "production"


def _development_secret_key() -> str:
    """A random key kept under .data/, so sessions survive restarts and no key is in the repo."""
    path = DATA_DIR / "secret_key"
    if not path.exists():
        DATA_DIR.mkdir(exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env_str("DJANGO_SECRET_KEY", required=PRODUCTION) or _development_secret_key()
DEBUG = env_bool("DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost"])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ConfigError("ALLOWED_HOSTS is not set; it is required in production mode")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

_database_url = env_str("DATABASE_URL")
if not _database_url:
    raise ConfigError(
        "DATABASE_URL is not set; set it to a PostgreSQL URL, or run through `make` / "
        "`python -m scrm.embedded -- <command>` to use the embedded server"
    )
DATABASES = {"default": database_from_url("DATABASE_URL", _database_url)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_redis_url = env_str("REDIS_URL")
if not _redis_url:
    raise ConfigError(
        "REDIS_URL is not set; set it to a Redis URL, or run through `make` / "
        "`python -m scrm.embedded -- <command>` to use the embedded server"
    )
REDIS_URL = redis_url("REDIS_URL", _redis_url)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served as our own static files
    "django_celery_beat",
    "scrm",
    "wecom",
    "contacts",
    "groups",
    "sop",
    "campaigns",
    "analytics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "scrm.middleware.ChineseFirstMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "scrm.urls"
WSGI_APPLICATION = "scrm.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTH_USER_MODEL = "scrm.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

# Chinese first; English through Django's i18n.
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
# Stored in UTC; shown and cut into calendar days in Shanghai time.
TIME_ZONE = "Asia/Shanghai"
USE_TZ = True

# Uploaded imports and produced exports; served only through views that check the login.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT") or DATA_DIR / "media")
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / ".data" / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Before the first collectstatic (a fresh clone's test run) whitenoise warns about the
# missing directory; the finders serve the files meanwhile.
warnings.filterwarnings("ignore", message="No directory at")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "scrm",
    }
}

SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["scrm.roles.RolePermission"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "SCRM API",
    "DESCRIPTION": "Private-domain operations on WeCom: contacts, groups, SOP, campaigns, metrics.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and the docs page need a login, like every other page and API.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI from our own static files (drf-spectacular-sidecar), never a CDN; no
    # validator badge, which would send the schema's address to swagger.io.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # Several models have a "stage", "kind" or "type": name each enum after its owner.
    "ENUM_NAME_OVERRIDES": {
        "ContactStageEnum": "contacts.models.Contact.Stage",
        "GroupStageEnum": "groups.models.Group.Stage",
        "ContactNoteKindEnum": "contacts.models.ContactNote.Kind",
        "ChannelCodeKindEnum": "contacts.models.ChannelCode.Kind",
        "EventTypeEnum": "analytics.models.EventType",
        "GroupTypeEnum": "groups.models.Group.Type",
        "PlanStatusEnum": "sop.models.Plan.Status",
        "DeliveryStatusEnum": "sop.models.Delivery.Status",
        "SkipReasonEnum": "sop.models.SkipReason",
    },
}


def _celery_broker_url(url: str) -> str:
    # redis-py speaks unix:///path; kombu wants redis+socket:///path for the same socket.
    if url.startswith("unix://"):
        return "redis+socket://" + url[len("unix://") :]
    return url


CELERY_BROKER_URL = _celery_broker_url(REDIS_URL)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Beat and ETAs in UTC: django-celery-beat has known bugs around local-time schedules.
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 300, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 360, minimum=1)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Every periodic job, in one place; beat copies them into its database schedule at start.
# Each job is idempotent, so a duplicate tick is harmless.
CELERY_BEAT_SCHEDULE = {
    # Every minute: callbacks stored while the broker was down, or whose worker died.
    "wecom-requeue-pending-callbacks": {
        "task": "wecom.tasks.requeue_pending_callbacks",
        "schedule": 60.0,
    },
    # Hourly at :05 / :20: lifecycle stages and rule-based tags follow behaviour.
    "contacts-stages-refresh": {
        "task": "contacts.loyalty_tasks.stages_refresh_all",
        "schedule": crontab(minute=5),
    },
    "contacts-tag-rules-evaluate": {
        "task": "contacts.loyalty_tasks.tag_rules_evaluate",
        "schedule": crontab(minute=20),
    },
    # Daily at 19:35 UTC (03:35 Shanghai): every contact's tier against the thresholds.
    "contacts-tiers-refresh": {
        "task": "contacts.loyalty_tasks.tiers_refresh_all",
        "schedule": crontab(minute=35, hour=19),
    },
    # Every 30 minutes: ask WeCom how waiting leaver transfers went (WeCom takes ~24 h).
    "groups-poll-pending-handovers": {
        "task": "groups.tasks.poll_pending_handovers",
        "schedule": 1800.0,
    },
    # Every minute: the SOP planner plans due slots, then due deliveries are sent.
    "sop-tick": {
        "task": "sop.tasks.tick",
        "schedule": 60.0,
    },
    # Every 5 minutes: confirmations and results of mass messages; reminders to staff.
    "sop-follow-up": {
        "task": "sop.tasks.follow_up",
        "schedule": 300.0,
    },
    # Every minute: campaigns start and end on time; invites, group-buys, coupons time out.
    "campaigns-tick": {
        "task": "campaigns.tasks.tick",
        "schedule": 60.0,
    },
    # Every 5 minutes: the daily rollups catch up with new events (today and yesterday always).
    "analytics-rollups-refresh": {
        "task": "analytics.tasks.rollups_refresh",
        "schedule": 300.0,
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

# WeCom. With WECOM_CORP_ID set the product talks to real WeCom and every credential is
# required; without it (development only) it talks to the fake WeCom server in wecom/fake,
# whose made-up credentials below are no secret.
WECOM_CORP_ID = env_str("WECOM_CORP_ID", required=PRODUCTION)
WECOM_FAKE = not WECOM_CORP_ID  # the offline fake WeCom (wecom/fake) stands in
if WECOM_CORP_ID:
    WECOM_SECRET = env_str("WECOM_SECRET", required=True)
    WECOM_AGENT_ID = env_str("WECOM_AGENT_ID", required=True)
    WECOM_TOKEN = env_str("WECOM_TOKEN", required=True)
    WECOM_AES_KEY = env_str("WECOM_AES_KEY", required=True)
    WECOM_API_BASE = env_str("WECOM_API_BASE", "https://qyapi.weixin.qq.com/cgi-bin/")
else:
    WECOM_CORP_ID = "wwfakecorp"
    WECOM_SECRET = "fake-secret"
    WECOM_AGENT_ID = "1000002"
    WECOM_TOKEN = "fake-token"
    WECOM_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
    WECOM_API_BASE = env_str("WECOM_API_BASE", "http://127.0.0.1:8900/cgi-bin/")
if len(WECOM_AES_KEY) != 43:
    raise ConfigError(
        f"WECOM_AES_KEY must be 43 characters (WeCom's EncodingAESKey), not {len(WECOM_AES_KEY)}"
    )
# Calls per second per API, well under WeCom's 10,000/min (≈ 166/s) and 150,000/hour
# (≈ 41.7/s sustained): the hourly cap is the one a long sync would hit.
WECOM_RATE_PER_SECOND = env_int("WECOM_RATE_PER_SECOND", 30, minimum=1)
# Concurrent calls per API; WeCom answers 45033 above about 5 for mark_tag and remark.
WECOM_CONCURRENCY = env_int("WECOM_CONCURRENCY", 5, minimum=1)
# Mass messages each customer / group may receive per day, as the corp admin set it.
WECOM_MASS_MESSAGES_PER_DAY = env_int("WECOM_MASS_MESSAGES_PER_DAY", 1, minimum=1)

# SOP rules of conduct (PRODUCT.md): pushes a customer / a group may receive from all SOPs
# and campaigns together, quiet hours (Shanghai time) that hold messages until morning, how
# far back the planner catches up after beat was down, and when to remind staff to confirm.
SOP_CONTACT_PUSHES_PER_DAY = env_int("SOP_CONTACT_PUSHES_PER_DAY", 1, minimum=0)
SOP_CONTACT_PUSHES_PER_WEEK = env_int("SOP_CONTACT_PUSHES_PER_WEEK", 3, minimum=0)
SOP_GROUP_PUSHES_PER_DAY = env_int("SOP_GROUP_PUSHES_PER_DAY", 3, minimum=0)
SOP_GROUP_PUSHES_PER_WEEK = env_int("SOP_GROUP_PUSHES_PER_WEEK", 15, minimum=0)
SOP_QUIET_HOURS = env_str("SOP_QUIET_HOURS", "22:00-08:00")  # "" for none
_CLOCK = r"([01]\d|2[0-3]):[0-5]\d"
if SOP_QUIET_HOURS and not re.fullmatch(f"{_CLOCK}-{_CLOCK}", SOP_QUIET_HOURS):
    raise ConfigError(f"SOP_QUIET_HOURS must look like 22:00-08:00, not {SOP_QUIET_HOURS!r}")
SOP_CATCH_UP_MINUTES = env_int("SOP_CATCH_UP_MINUTES", 180, minimum=1)
SOP_REMIND_AFTER_MINUTES = env_int("SOP_REMIND_AFTER_MINUTES", 120, minimum=1)
# A mass message nobody confirmed after this long is given up (WeCom keeps it ~ 3 days).
SOP_CONFIRM_WITHIN_HOURS = env_int("SOP_CONFIRM_WITHIN_HOURS", 72, minimum=1)

# Workbench (工作台) alerts, shown on the page beside each alert: a group losing members fast
# (customers who left in the last 24 h ≥ the larger of the minimum and the percentage of its
# customers 24 h ago), a staff member deleted (拉黑) by many customers in the last 7 days,
# and WeCom callbacks still pending after some minutes.
WORKBENCH_GROUP_LEAVES_MIN = env_int("WORKBENCH_GROUP_LEAVES_MIN", 5, minimum=1)
WORKBENCH_GROUP_LEAVES_PERCENT = env_int("WORKBENCH_GROUP_LEAVES_PERCENT", 10, minimum=0)
WORKBENCH_STAFF_BLOCKS_MIN = env_int("WORKBENCH_STAFF_BLOCKS_MIN", 5, minimum=1)
WORKBENCH_CALLBACK_STALE_MINUTES = env_int("WORKBENCH_CALLBACK_STALE_MINUTES", 10, minimum=1)
