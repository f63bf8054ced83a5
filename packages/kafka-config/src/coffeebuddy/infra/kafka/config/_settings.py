"""KafkaSettings: every Kafka client setting, read from ``KAFKA_*`` environment variables.

About 400 lines for one reason: the pydantic model's field declarations (one per variable, each
with its bounds and description) are a declarative table; the rules live in their own modules.
"""

from __future__ import annotations

import logging
import os
import re
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from coffeebuddy.infra.kafka.config._bootstrap import bootstrap_entry_error
from coffeebuddy.infra.kafka.config._env import (
    ENV_PREFIX,
    ENVIRON,
    MappingEnvSource,
    likely_typos,
    with_typo_hints,
)
from coffeebuddy.infra.kafka.config._errors import KafkaSettingsError, SettingProblem
from coffeebuddy.infra.kafka.config._problems import (
    SECRET_FIELDS,
    cross_problems_despite,
    problems_from,
    to_settings_error,
)
from coffeebuddy.infra.kafka.config._rules import (
    SASL_PROTOCOLS,
    TLS_PROTOCOLS,
    security_problems,
    tuning_problems,
)
from coffeebuddy.infra.kafka.config._ssl import build_ssl_context

logger = logging.getLogger("coffeebuddy.infra.kafka.config")

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
Acks = Literal[0, 1, "all"]
CompressionType = Literal["none", "gzip", "snappy", "lz4", "zstd"]
AutoOffsetReset = Literal["earliest", "latest", "none"]
IsolationLevel = Literal["read_uncommitted", "read_committed"]

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,249}$")

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]


class KafkaSettings(BaseSettings):
    """Connection, security and tuning settings shared by every CoffeeBuddy Kafka client.

    Build it with :meth:`from_env`; hand :meth:`producer_kwargs`, :meth:`consumer_kwargs`
    or :meth:`admin_kwargs` to aiokafka. Defaults are production-safe (acks=all, idempotence).
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        env_ignore_empty=True,
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
        validate_default=True,
    )

    # Connection
    bootstrap_servers: Annotated[list[str], NoDecode]
    client_id: str = "coffeebuddy"
    client_rack: str | None = None
    # Security
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: SecretStr | None = None
    ssl_check_hostname: bool = True
    # Producer
    acks: Acks = "all"
    enable_idempotence: bool = True
    linger_ms: NonNegativeInt = 5
    compression_type: CompressionType = "none"
    # aiokafka keeps one batch in flight per partition: 16 KiB (its default) caps a producer of
    # ~700 B records at ~23 per round trip per partition; 256 KiB lets a burst go in a few
    max_batch_size: PositiveInt = 262_144
    max_request_size: PositiveInt = 1_048_576
    # Consumer
    session_timeout_ms: PositiveInt = 45_000
    heartbeat_interval_ms: PositiveInt = 3_000
    max_poll_interval_ms: PositiveInt = 300_000
    auto_offset_reset: AutoOffsetReset = "earliest"
    fetch_max_bytes: PositiveInt = 52_428_800
    max_partition_fetch_bytes: PositiveInt = 1_048_576
    fetch_max_wait_ms: NonNegativeInt = 500
    max_poll_records: PositiveInt = 500
    isolation_level: IsolationLevel = "read_uncommitted"
    # All clients
    request_timeout_ms: PositiveInt = 40_000
    metadata_max_age_ms: PositiveInt = 300_000
    retry_backoff_ms: NonNegativeInt = 100
    connections_max_idle_ms: PositiveInt = 540_000

    _ssl_context: ssl.SSLContext | None = PrivateAttr(default=None)

    SECRET_FIELDS: ClassVar[frozenset[str]] = SECRET_FIELDS

    # ------------------------------------------------------------------ construction

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            error = to_settings_error(exc, type(self).model_fields)
        else:
            return
        # Raised outside the except block: pydantic's error (it holds the raw inputs,
        # passwords included) must not ride along as __context__.
        raise error

    # model_validate() (used by with_overrides) validates without calling __init__, so it
    # never reads the environment; pydantic checks this marker to decide.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read keyword arguments, then the environment (or from_env's mapping); no dotenv."""
        return (init_settings, MappingEnvSource(settings_cls))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read the settings from ``environ`` (default ``os.environ``).

        Raises :class:`KafkaSettingsError` listing every problem, each naming its variable.
        """
        mapping = dict(environ) if environ is not None else dict(os.environ)
        typos = likely_typos(mapping, cls.model_fields)
        for typo, meant in typos.items():
            logger.warning("%s is not a Kafka setting; did you mean %s?", typo, meant)
        token = ENVIRON.set(mapping)
        try:
            return cls()
        except KafkaSettingsError as exc:
            if not typos:
                raise
            error = with_typo_hints(exc, typos)
        finally:
            ENVIRON.reset(token)
        raise error

    def with_overrides(self, **fields: Any) -> Self:
        """A validated copy with ``fields`` replaced (same rules as from_env)."""
        data: dict[str, Any] = {name: getattr(self, name) for name in type(self).model_fields}
        data.update(fields)
        try:
            return type(self).model_validate(data)
        except ValidationError as exc:
            error = to_settings_error(exc, type(self).model_fields)
        raise error  # outside the except block, so no __context__ with raw inputs

    # ------------------------------------------------------------------ field rules

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _split_bootstrap(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("bootstrap_servers")
    @classmethod
    def _check_bootstrap(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("is empty; give a comma-separated list of host:port")
        errors: list[str] = []
        seen: set[str] = set()
        for entry in value:
            error = bootstrap_entry_error(entry)
            if error is not None:
                errors.append(error)
            elif entry.lower() in seen:
                errors.append(f"{entry!r} is listed twice")
            seen.add(entry.lower())
        if errors:
            raise ValueError("; ".join(errors))
        return value

    @field_validator("client_id")
    @classmethod
    def _check_client_id(cls, value: str) -> str:
        if not _CLIENT_ID.match(value):
            raise ValueError(
                f"must be 1-249 characters of letters, digits, '.', '_' or '-' (got {value!r})"
            )
        return value

    @field_validator("client_rack", "sasl_username")
    @classmethod
    def _check_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("security_protocol", "sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("compression_type", "auto_offset_reset", "isolation_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("acks", mode="before")
    @classmethod
    def _normalise_acks(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip().lower()
            return {"0": 0, "1": 1, "-1": "all", "all": "all"}.get(text, value)
        if value == -1 and not isinstance(value, bool):
            return "all"
        return value

    @field_validator("ssl_cafile", "ssl_certfile", "ssl_keyfile")
    @classmethod
    def _check_readable_file(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        path = value.expanduser()
        if not path.exists():
            raise ValueError(f"file not found: {path} (working directory {Path.cwd()})")
        if not path.is_file():
            raise ValueError(f"not a regular file: {path}")
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
        return path

    # ------------------------------------------------------------------ cross-field rules

    @model_validator(mode="wrap")
    @classmethod
    def _collect_every_problem(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        try:
            settings = handler(data)
        except ValidationError as exc:
            problems = problems_from(exc, cls.model_fields)
            if isinstance(data, Mapping):
                problems.extend(cross_problems_despite(cls, dict(data), problems, handler))
            raise KafkaSettingsError(problems) from None
        cross = settings._cross_field_problems()
        if cross:
            raise KafkaSettingsError(cross)
        return settings

    def _cross_field_problems(self) -> list[SettingProblem]:
        """Rules between fields; also builds the TLS context so bad PEM files show up now."""
        problems = security_problems(self)
        if self.security_protocol in TLS_PROTOCOLS and not problems:
            context, ssl_problems = self._build_ssl_context()
            problems.extend(ssl_problems)
            self._ssl_context = context
        problems.extend(tuning_problems(self))
        return problems

    # ------------------------------------------------------------------ copying

    def __getstate__(self) -> dict[Any, Any]:
        # An SSLContext cannot be pickled; a copy builds its own from the files when asked.
        state = super().__getstate__()
        private = state.get("__pydantic_private__")
        if private:
            state["__pydantic_private__"] = {**private, "_ssl_context": None}
        return state

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        context, self._ssl_context = self._ssl_context, None
        try:
            return super().__deepcopy__(memo)
        finally:
            self._ssl_context = context

    def __eq__(self, other: object) -> bool:
        # Field values only: the cached SSLContext is derived from them.
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, KafkaSettings)
        return all(getattr(self, n) == getattr(other, n) for n in type(self).model_fields)

    __hash__ = None  # type: ignore[assignment]  # list field: settings are not hashable

    # ------------------------------------------------------------------ client kwargs

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for SSL/SASL_SSL (built from the files at validation), else None."""
        if self.security_protocol not in TLS_PROTOCOLS:
            return None
        if self._ssl_context is None:
            context, problems = self._build_ssl_context()
            if problems:  # the files changed since validation
                raise KafkaSettingsError(problems)
            self._ssl_context = context
        return self._ssl_context

    def _build_ssl_context(self) -> tuple[ssl.SSLContext | None, list[SettingProblem]]:
        password = self.ssl_key_password
        return build_ssl_context(
            cafile=self.ssl_cafile,
            certfile=self.ssl_certfile,
            keyfile=self.ssl_keyfile,
            key_password=password.get_secret_value() if password is not None else None,
            check_hostname=self.ssl_check_hostname,
        )

    def _common_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "bootstrap_servers": list(self.bootstrap_servers),
            "client_id": self.client_id,
            "request_timeout_ms": self.request_timeout_ms,
            "retry_backoff_ms": self.retry_backoff_ms,
            "metadata_max_age_ms": self.metadata_max_age_ms,
            "connections_max_idle_ms": self.connections_max_idle_ms,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol in TLS_PROTOCOLS:
            kwargs["ssl_context"] = self.ssl_context()
        if self.security_protocol in SASL_PROTOCOLS:
            assert self.sasl_password is not None  # enforced by validation
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password.get_secret_value()
        return kwargs

    def producer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``aiokafka.AIOKafkaProducer`` (only keys it accepts)."""
        kwargs = self._common_kwargs()
        kwargs.update(
            acks=self.acks,
            enable_idempotence=self.enable_idempotence,
            linger_ms=self.linger_ms,
            compression_type=None if self.compression_type == "none" else self.compression_type,
            max_batch_size=self.max_batch_size,
            max_request_size=self.max_request_size,
        )
        return kwargs

    def consumer_kwargs(self, group_id: str | None) -> dict[str, Any]:
        """Keyword arguments for ``aiokafka.AIOKafkaConsumer``; auto-commit is always off."""
        kwargs = self._common_kwargs()
        kwargs.update(
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset=self.auto_offset_reset,
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=self.heartbeat_interval_ms,
            max_poll_interval_ms=self.max_poll_interval_ms,
            fetch_max_bytes=self.fetch_max_bytes,
            max_partition_fetch_bytes=self.max_partition_fetch_bytes,
            fetch_max_wait_ms=self.fetch_max_wait_ms,
            max_poll_records=self.max_poll_records,
            isolation_level=self.isolation_level,
        )
        if self.client_rack is not None:
            kwargs["client_rack"] = self.client_rack
        return kwargs

    def admin_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``aiokafka.admin.AIOKafkaAdminClient``."""
        return self._common_kwargs()

    # ------------------------------------------------------------------ safe display

    def describe(self) -> str:
        """One line for logs: where and how we connect, never a secret."""
        parts = [
            f"bootstrap={','.join(self.bootstrap_servers)}",
            f"protocol={self.security_protocol}",
        ]
        if self.sasl_mechanism is not None:
            parts.append(f"mechanism={self.sasl_mechanism}")
        if self.sasl_username is not None:
            parts.append(f"username={self.sasl_username}")
        if self.ssl_cafile is not None:
            parts.append(f"cafile={self.ssl_cafile}")
        parts.append(f"client_id={self.client_id}")
        return " ".join(parts)

    def __repr__(self) -> str:
        return f"KafkaSettings({self.describe()})"

    def __str__(self) -> str:
        return self.describe()
