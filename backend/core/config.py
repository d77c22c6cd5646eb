"""Settings for the API, the Celery worker/beat and the ML client, read from the environment then `.env`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from backend.auth.settings import AuthSettings
from backend.sources.settings import AreaSettings

MB = 1024 * 1024
MIN_OPS_TOKEN_LENGTH = 20


class Settings(AuthSettings, AreaSettings):
    """Every knob of the service; the environment wins over `.env`. Accounts, quotas and fair scheduling:
    backend.auth.settings.AuthSettings; area jobs (sources, limits): backend.sources.settings.AreaSettings."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    API_HOST: str = "127.0.0.1"
    API_PORT: int = 8000
    ML_PORT: int = 8002
    ML_SERVICE_URL: str = "http://127.0.0.1:8002"
    REDIS_URL: str | None = None
    # The API's HTTP guard (backend/api/http.py): request head size (431 above), time from a request's first
    # byte to the end of its headers (then 408 and closed), open connections per API process.
    API_MAX_HEADER_BYTES: int = Field(16384, ge=1024)
    API_HEADER_TIMEOUT_SECONDS: float = Field(10.0, gt=0)
    API_MAX_CONNECTIONS: int = Field(1000, ge=1)
    # Long polls (GET /api/status?wait=) waiting at once per API process, each on its own pub/sub connection;
    # more get a 429. The API's async Redis pool is sized to hold them and the rest.
    STATUS_MAX_WAITERS: int = Field(40, ge=1)
    # Where `make run` starts its embedded redis-server when REDIS_URL is unset or unreachable.
    EMBEDDED_REDIS_PORT: int = 6390
    RESULTS_DIR: Path = Path("results")

    ARCHIVE_TTL_SECONDS: int = Field(600, ge=1)
    JOB_RECORD_TTL_SECONDS: int = Field(604800, ge=60)
    JOB_DEADLINE_SECONDS: int = Field(3600, ge=1)
    SWEEP_INTERVAL_SECONDS: float = Field(30.0, gt=0)
    # Unacked Redis messages (a SIGKILLed worker's tasks and ETA timers) come back after this long.
    # Keep it above the longest task and ARCHIVE_TTL_SECONDS (else timers run twice: harmless, they are
    # idempotent) and below JOB_DEADLINE_SECONDS, so a redelivered image still finishes in time.
    VISIBILITY_TIMEOUT_SECONDS: int = Field(1200, ge=1)
    MAX_DELIVERIES: int = Field(3, ge=1)  # a worker died this often on one image: give up on it
    # Workers retry a lost Redis connection this long (every 0.5 s) before an image or a timer fails:
    # a Redis restart shorter than this loses no work in progress. The API gives up after ~1 s (503).
    REDIS_RETRY_SECONDS: float = Field(30.0, ge=0)

    MAX_UPLOAD_MB: int = Field(2048, ge=1)
    MAX_UNCOMPRESSED_MB: int = Field(8192, ge=1)
    MAX_COMPRESSION_RATIO: float = Field(200.0, gt=1)
    MAX_ZIP_ENTRIES: int = Field(10000, ge=1)
    MAX_IMAGES: int = Field(5000, ge=1)
    MAX_IMAGE_PIXELS: int = Field(400_000_000, ge=1)
    # TIFF entries over SCENE_MIN_MB go to the ML service by path, not in a request body (POST /segment/scene:
    # the worker extracts them under RESULTS_DIR, the service reads them there in place, window by window):
    # scenes of up to SCENE_MAX_PIXELS. The ML service's ML_SCENE_DIR must name the same folder.
    SCENE_MIN_MB: int = Field(64, ge=1)
    SCENE_MAX_PIXELS: int = Field(1_000_000_000, ge=1)
    MIN_FREE_DISK_MB: int = Field(500, ge=0)
    # Disk reserved per upload for what its job will write, as a multiple of the upload (2.7 measured).
    DISK_RESERVE_FACTOR: float = Field(2.7, ge=0)

    WORKER_CONCURRENCY: int = Field(2, ge=1)
    # Images per chord member (one task, one ML request): per-task costs amortised over small tiles.
    IMAGES_PER_TASK: int = Field(32, ge=1)
    # A chord member is closed before its input files pass this size, so large scenes go one per task.
    TASK_MAX_MB: int = Field(16, ge=1)
    # A member's images go to the ML service in requests of at most this many pixels (one larger image alone):
    # a request's time grows with its pixels, and each request must finish within ML_TIMEOUT_SECONDS.
    REQUEST_MAX_PIXELS: int = Field(32_000_000, ge=1)
    # Added to the worker's nice value (pool children inherit it): status polls and uploads run first.
    WORKER_NICE: int = Field(10, ge=0, le=19)
    ML_TIMEOUT_SECONDS: float = Field(120.0, gt=0)
    ML_RETRIES: int = Field(4, ge=0)
    ML_RETRY_BACKOFF_SECONDS: float = Field(1.0, ge=0)

    # Operator endpoints: worker ping/inspect broadcasts and the ML probe wait this long; the workers'
    # answers are reused for MONITOR_CACHE_SECONDS, so health probes never broadcast per request.
    MONITOR_TIMEOUT_SECONDS: float = Field(1.0, gt=0)
    MONITOR_CACHE_SECONDS: float = Field(5.0, ge=0)
    # Job ids lead to download links, so the job list and queue views are for operators, whatever their
    # address: `Authorization: Bearer <token>` with OPS_TOKEN, or, when unset, the random token the API writes
    # to OPS_TOKEN_FILE on first start (backend/api/ops_auth.py).
    OPS_TOKEN: str = ""
    OPS_TOKEN_FILE: Path = Path("var/ops-token")

    LOG_LEVEL: str = "INFO"
    LOG_JSON: bool = False

    # The web page's basemap: an http(s) tile URL template ({z}/{x}/{y}, optional {s}); empty = no basemap,
    # the map works offline. Its origin is added to the page's img-src. The attribution is shown as text.
    MAP_TILE_URL: str = Field("", pattern=r"^(https?://[^\s'\";,]+)?$")
    MAP_ATTRIBUTION: str = ""

    @field_validator("OPS_TOKEN")
    @classmethod
    def _long_enough(cls, token: str) -> str:
        if token and len(token) < MIN_OPS_TOKEN_LENGTH:
            raise ValueError(f"OPS_TOKEN must have at least {MIN_OPS_TOKEN_LENGTH} characters (or be empty)")
        return token

    @property
    def redis_url(self) -> str:
        """The Redis actually used: REDIS_URL, or the stack's embedded one when unset."""
        return self.REDIS_URL or f"redis://127.0.0.1:{self.EMBEDDED_REDIS_PORT}/0"

    @property
    def max_upload_bytes(self) -> int:
        return self.MAX_UPLOAD_MB * MB


settings = Settings()
