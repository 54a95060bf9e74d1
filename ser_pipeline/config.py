"""Every setting the pipeline reads, resolved in one place.

Environment variables use the ``SER_`` prefix (``SER_LAKE``, ``SER_REGISTRY``, ...).
S3 credentials come from the standard AWS variables, so the same shell that works with
the AWS CLI works here.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Locations, credentials and concurrency knobs.

    Examples:
        >>> Settings(lake="s3://bucket/lake").lake
        's3://bucket/lake'
    """

    model_config = SettingsConfigDict(env_prefix="SER_", extra="ignore", populate_by_name=True)

    lake: str = Field("./lake", description="Lake root: a local path or s3://bucket/prefix.")
    registry: str = Field("./registry", description="Model registry root: local path or s3://.")
    db: str = Field("./ser.duckdb", description="Analyst DuckDB file (always local).")
    cache_dir: str = Field(
        "~/.cache/ser-pipeline", description="Local cache of models fetched from the registry."
    )
    s3_endpoint_url: str | None = Field(
        None,
        validation_alias=AliasChoices("SER_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                                      "AWS_ENDPOINT_URL"),
        description="S3-compatible endpoint (MinIO, moto, Ceph...). None means AWS.",
    )
    aws_access_key_id: SecretStr | None = Field(
        None, validation_alias=AliasChoices("AWS_ACCESS_KEY_ID")
    )
    aws_secret_access_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("AWS_SECRET_ACCESS_KEY")
    )
    aws_session_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("AWS_SESSION_TOKEN")
    )
    aws_region: str | None = Field(
        None, validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )
    s3_max_attempts: int = Field(
        5, ge=1, description="Attempts per S3 request (botocore 'standard' retries: 5xx, "
        "throttling, connection errors and timeouts, with jittered backoff)."
    )
    s3_connect_timeout: float = Field(10.0, gt=0, description="S3 connect timeout (seconds).")
    s3_read_timeout: float = Field(
        60.0, gt=0, description="S3 read timeout (seconds): a stalled request is retried."
    )
    dask_address: str | None = Field(None, description="tcp://host:port of a Dask scheduler.")
    max_workers: int = Field(2, ge=1, description="Bound on concurrent shard tasks.")
    shard_size: int = Field(64, ge=1, description="Files per ingest (and evaluate) shard task.")
    label_shard_size: int = Field(
        256, ge=1, description="Clips per label shard task (at most; a small run is split "
        "so that every worker gets a shard). Larger than ingest's: each task costs the "
        "Prefect server ~35 ms of CPU and each shard commits one teacher_labels part."
    )
    max_duration_s: float = Field(
        3600.0, gt=0, description="Ingest quarantines files longer than this."
    )

    teacher: str | None = Field(
        None, description="Production teacher spec (hf:/ensemble:/onnx:) used by relabel."
    )
    relabel_sources: list[str] = Field(
        default_factory=list,
        description="Where new audio arrives (local dirs or s3:// prefixes), JSON list.",
    )
    relabel_corpus: str = Field("incoming", description="Corpus name for relabelled audio.")
    model_name: str = Field("ser-wav2small", description="Registry name of the production model.")
    drift_threshold: float = Field(
        0.25, gt=0, le=1, description="KS statistic above which relabel raises a drift event."
    )

    def s3_options(self) -> dict:
        """Keyword arguments for ``s3fs.S3FileSystem``; secrets stay out of reprs."""
        options: dict = {}
        if self.s3_endpoint_url:
            options["endpoint_url"] = self.s3_endpoint_url
        if self.aws_access_key_id and self.aws_secret_access_key:
            options["key"] = self.aws_access_key_id.get_secret_value()
            options["secret"] = self.aws_secret_access_key.get_secret_value()
        if self.aws_session_token:
            options["token"] = self.aws_session_token.get_secret_value()
        if self.aws_region:
            options["client_kwargs"] = {"region_name": self.aws_region}
        # Bounded retries and timeouts: transient faults are retried, a dead endpoint fails
        # with an error after a bounded time instead of hanging.
        options["config_kwargs"] = {
            "retries": {"max_attempts": self.s3_max_attempts, "mode": "standard"},
            "connect_timeout": self.s3_connect_timeout,
            "read_timeout": self.s3_read_timeout,
        }
        return options


def get_settings(**overrides: object) -> Settings:
    """The process settings, with CLI overrides (``None`` values are ignored)."""
    return Settings(**{key: value for key, value in overrides.items() if value is not None})
