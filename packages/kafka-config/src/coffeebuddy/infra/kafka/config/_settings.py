"""KafkaSettings: every Kafka client setting, read from ``KAFKA_*`` environment variables."""

from __future__ import annotations

import difflib
import ipaddress
import logging
import os
import re
import ssl
import types
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self, Union, get_args, get_origin

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
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from coffeebuddy.infra.kafka.config._errors import KafkaSettingsError, SettingProblem
from coffeebuddy.infra.kafka.config._ssl import build_ssl_context

ENV_PREFIX = "KAFKA_"
logger = logging.getLogger("coffeebuddy.infra.kafka.config")

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
Acks = Literal[0, 1, "all"]
CompressionType = Literal["none", "gzip", "snappy", "lz4", "zstd"]
AutoOffsetReset = Literal["earliest", "latest", "none"]
IsolationLevel = Literal["read_uncommitted", "read_committed"]

_SECRET_FIELDS = frozenset({"sasl_password", "ssl_key_password"})
_TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
_SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_-]{1,63})*\.?$"
)
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,249}$")

# The environment mapping from_env() reads instead of os.environ (None: os.environ).
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("kafka_settings_environ", default=None)


def env_var(field: str) -> str:
    """The environment variable that sets ``field`` (``acks`` -> ``KAFKA_ACKS``)."""
    return ENV_PREFIX + field.upper()


class _MappingEnvSource(EnvSettingsSource):
    """The env source, reading the mapping given to from_env() when there is one."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        environ = _ENVIRON.get()
        if environ is None:
            return super()._load_env_vars()
        loaded: dict[str, str | None] = {}
        for key, value in environ.items():
            if self.env_ignore_empty and value == "":
                continue
            loaded[key if self.case_sensitive else key.lower()] = value
        return loaded


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
    max_batch_size: PositiveInt = 16_384
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

    SECRET_FIELDS: ClassVar[frozenset[str]] = _SECRET_FIELDS

    # ------------------------------------------------------------------ construction

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            error = _to_settings_error(exc)
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
        return (init_settings, _MappingEnvSource(settings_cls))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read the settings from ``environ`` (default ``os.environ``).

        Raises :class:`KafkaSettingsError` listing every problem, each naming its variable.
        """
        mapping = dict(environ) if environ is not None else dict(os.environ)
        typos = _likely_typos(mapping)
        for typo, meant in typos.items():
            logger.warning("%s is not a Kafka setting; did you mean %s?", typo, meant)
        token = _ENVIRON.set(mapping)
        try:
            return cls()
        except KafkaSettingsError as exc:
            if not typos:
                raise
            error = _with_typo_hints(exc, typos)
        finally:
            _ENVIRON.reset(token)
        raise error

    def with_overrides(self, **fields: Any) -> Self:
        """A validated copy with ``fields`` replaced (same rules as from_env)."""
        data: dict[str, Any] = {name: getattr(self, name) for name in type(self).model_fields}
        data.update(fields)
        try:
            return type(self).model_validate(data)
        except ValidationError as exc:
            error = _to_settings_error(exc)
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
            error = _bootstrap_entry_error(entry)
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
            problems = _problems_from(exc)
            if isinstance(data, Mapping):
                problems.extend(_cross_problems_despite(cls, dict(data), problems, handler))
            raise KafkaSettingsError(problems) from None
        cross = settings._cross_field_problems()
        if cross:
            raise KafkaSettingsError(cross)
        return settings

    def _cross_field_problems(self) -> list[SettingProblem]:
        """Rules between fields; also builds the TLS context so bad PEM files show up now."""
        problems: list[SettingProblem] = []
        protocol = self.security_protocol
        if protocol in _SASL_PROTOCOLS:
            for field, present in (
                ("sasl_mechanism", self.sasl_mechanism is not None),
                ("sasl_username", self.sasl_username is not None),
                ("sasl_password", self.sasl_password is not None),
            ):
                if not present:
                    problems.append(
                        SettingProblem(
                            env_var(field), f"is required when KAFKA_SECURITY_PROTOCOL={protocol}"
                        )
                    )
        else:
            problems.extend(
                SettingProblem(
                    env_var(field),
                    f"is set but KAFKA_SECURITY_PROTOCOL={protocol} does not use SASL; "
                    "use SASL_SSL (or SASL_PLAINTEXT) or unset it",
                )
                for field in ("sasl_mechanism", "sasl_username", "sasl_password")
                if getattr(self, field) is not None
            )
        if protocol not in _TLS_PROTOCOLS:
            problems.extend(
                SettingProblem(
                    env_var(field),
                    f"is set but KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS; "
                    "use SSL or SASL_SSL, or unset it",
                )
                for field in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_key_password")
                if getattr(self, field) is not None
            )
        else:
            if self.ssl_keyfile is not None and self.ssl_certfile is None:
                problems.append(
                    SettingProblem(
                        "KAFKA_SSL_CERTFILE",
                        "is required when KAFKA_SSL_KEYFILE is set (the client certificate)",
                    )
                )
            if self.ssl_key_password is not None and self.ssl_certfile is None:
                problems.append(
                    SettingProblem(
                        "KAFKA_SSL_KEY_PASSWORD",
                        "is set but there is no KAFKA_SSL_CERTFILE/KAFKA_SSL_KEYFILE to decrypt",
                    )
                )
            if not problems:
                context, ssl_problems = build_ssl_context(
                    cafile=self.ssl_cafile,
                    certfile=self.ssl_certfile,
                    keyfile=self.ssl_keyfile,
                    key_password=(
                        self.ssl_key_password.get_secret_value()
                        if self.ssl_key_password is not None
                        else None
                    ),
                    check_hostname=self.ssl_check_hostname,
                )
                problems.extend(ssl_problems)
                self._ssl_context = context
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            problems.append(
                SettingProblem(
                    "KAFKA_HEARTBEAT_INTERVAL_MS",
                    f"must be less than KAFKA_SESSION_TIMEOUT_MS ({self.session_timeout_ms}); "
                    f"got {self.heartbeat_interval_ms} (about a third of it is usual)",
                )
            )
        if self.enable_idempotence and self.acks != "all":
            problems.append(
                SettingProblem(
                    "KAFKA_ACKS",
                    f"must be all while KAFKA_ENABLE_IDEMPOTENCE is true (got {self.acks!r}); "
                    "set KAFKA_ENABLE_IDEMPOTENCE=false to use a weaker acks",
                )
            )
        if self.max_batch_size > self.max_request_size:
            problems.append(
                SettingProblem(
                    "KAFKA_MAX_BATCH_SIZE",
                    f"must not exceed KAFKA_MAX_REQUEST_SIZE ({self.max_request_size}); "
                    f"got {self.max_batch_size}",
                )
            )
        if self.fetch_max_wait_ms >= self.request_timeout_ms:
            problems.append(
                SettingProblem(
                    "KAFKA_FETCH_MAX_WAIT_MS",
                    f"must be less than KAFKA_REQUEST_TIMEOUT_MS ({self.request_timeout_ms}); "
                    f"got {self.fetch_max_wait_ms}",
                )
            )
        if self.compression_type not in ("none", "gzip") and not _codec_available(
            self.compression_type
        ):
            problems.append(
                SettingProblem(
                    "KAFKA_COMPRESSION_TYPE",
                    f"{self.compression_type} needs the 'cramjam' package, which is not "
                    "installed (pip install cramjam, or use gzip)",
                )
            )
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
        if self.security_protocol not in _TLS_PROTOCOLS:
            return None
        if self._ssl_context is None:
            context, problems = build_ssl_context(
                cafile=self.ssl_cafile,
                certfile=self.ssl_certfile,
                keyfile=self.ssl_keyfile,
                key_password=(
                    self.ssl_key_password.get_secret_value()
                    if self.ssl_key_password is not None
                    else None
                ),
                check_hostname=self.ssl_check_hostname,
            )
            if problems:  # the files changed since validation
                raise KafkaSettingsError(problems)
            self._ssl_context = context
        return self._ssl_context

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
        if self.security_protocol in _TLS_PROTOCOLS:
            kwargs["ssl_context"] = self.ssl_context()
        if self.security_protocol in _SASL_PROTOCOLS:
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


# ---------------------------------------------------------------------- helpers


def _likely_typos(environ: Mapping[str, str]) -> dict[str, str]:
    """``KAFKA_*`` names that are no setting but close to one: {given name: meant name}."""
    known = [env_var(name) for name in KafkaSettings.model_fields]
    typos: dict[str, str] = {}
    for key in environ:
        upper = key.upper()
        if upper.startswith(ENV_PREFIX) and upper not in known:
            match = difflib.get_close_matches(upper, known, n=1, cutoff=0.85)
            if match:
                typos[key] = match[0]
    return typos


def _with_typo_hints(exc: KafkaSettingsError, typos: Mapping[str, str]) -> KafkaSettingsError:
    meant_to_typo = {meant: typo for typo, meant in typos.items()}
    return KafkaSettingsError(
        SettingProblem(p.variable, f"{p.message} ({meant_to_typo[p.variable]} is set: a typo?)")
        if p.variable in meant_to_typo
        else p
        for p in exc.problems
    )


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) of a validated bootstrap entry as (host, port)."""
    host, _, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def _bootstrap_entry_error(entry: str) -> str | None:
    if "://" in entry:
        scheme = entry.split("://", 1)[0]
        return (
            f"{entry!r} has a scheme; drop '{scheme}://' (the protocol belongs in "
            "KAFKA_SECURITY_PROTOCOL)"
        )
    host, sep, port_text = entry.rpartition(":")
    if not sep:
        return f"{entry!r} has no port; use host:port (e.g. {entry}:9092)"
    if not port_text.isdigit():
        return f"{entry!r} has port {port_text!r}; the port must be a number 1-65535"
    if not 1 <= int(port_text) <= 65535:
        return f"{entry!r} has port {int(port_text)}; the port must be 1-65535"
    if not host:
        return f"{entry!r} has no host; use host:port"
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return f"{entry!r} has an invalid IPv6 address {host}"
        return None
    if ":" in host:
        return f"{entry!r}: write an IPv6 address in brackets, e.g. [::1]:9092"
    if not _HOSTNAME.match(host):
        return f"{entry!r} has an invalid host {host!r}"
    return None


def _codec_available(codec: str) -> bool:
    from aiokafka import codec as aiokafka_codec

    checks = {
        "snappy": aiokafka_codec.has_snappy,
        "lz4": aiokafka_codec.has_lz4,
        "zstd": aiokafka_codec.has_zstd,
    }
    return bool(checks[codec]())


def _literal_choices(annotation: Any) -> list[Any] | None:
    """The allowed values of a Literal (or Optional Literal) annotation."""
    origin = get_origin(annotation)
    if origin is Literal:
        return list(get_args(annotation))
    if origin in (Union, types.UnionType):
        for arg in get_args(annotation):
            choices = _literal_choices(arg)
            if choices is not None:
                return choices
    return None


def _shown(field: str, value: Any) -> str:
    if field in _SECRET_FIELDS:
        return ""
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f" (got {text})"


def _problem_for(error: Mapping[str, Any]) -> SettingProblem:
    loc = error.get("loc", ())
    field = str(loc[0]) if loc else ""
    variable = env_var(field) if field else "KAFKA_*"
    kind = error.get("type", "")
    value = error.get("input")
    ctx = error.get("ctx") or {}
    got = _shown(field, value)
    field_info = KafkaSettings.model_fields.get(field)
    if kind == "missing":
        if field == "bootstrap_servers":
            return SettingProblem(variable, "is required (e.g. broker1:9092,broker2:9092)")
        return SettingProblem(variable, "is required")
    if kind == "extra_forbidden":
        return SettingProblem(variable, f"is not a Kafka setting ({field!r} is unknown)")
    if kind == "literal_error" and field_info is not None:
        choices = _literal_choices(field_info.annotation) or []
        return SettingProblem(variable, f"must be one of {', '.join(str(c) for c in choices)}{got}")
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return SettingProblem(variable, f"must be a whole number{got}")
    if kind in ("bool_parsing", "bool_type"):
        return SettingProblem(variable, f"must be true or false{got}")
    if kind == "greater_than":
        return SettingProblem(variable, f"must be greater than {ctx.get('gt')}{got}")
    if kind == "greater_than_equal":
        return SettingProblem(variable, f"must be at least {ctx.get('ge')}{got}")
    if kind == "value_error":
        inner = ctx.get("error")
        return SettingProblem(variable, str(inner) if inner is not None else "is invalid")
    message = str(error.get("msg", "is invalid"))
    return SettingProblem(variable, f"{message[:1].lower()}{message[1:]}{got}")


def _problems_from(exc: ValidationError) -> list[SettingProblem]:
    problems: list[SettingProblem] = []
    for error in exc.errors():
        inner = (error.get("ctx") or {}).get("error")
        if isinstance(inner, KafkaSettingsError):
            problems.extend(inner.problems)
        else:
            problems.append(_problem_for(error))
    return problems


def _cross_problems_despite(
    cls: type[KafkaSettings],
    data: dict[str, Any],
    problems: list[SettingProblem],
    handler: ModelWrapValidatorHandler[Any],
) -> list[SettingProblem]:
    """Cross-field problems among the fields that are valid on their own.

    The bad fields fall back to their defaults for a second pass; a rule that then fires
    on a bad field (or its stand-in) is dropped, since that field is already reported.
    """
    bad = {p.variable for p in problems}
    retry = {k: v for k, v in data.items() if env_var(str(k)) not in bad}
    if "KAFKA_BOOTSTRAP_SERVERS" in bad:
        retry["bootstrap_servers"] = ["localhost:9092"]
    try:
        settings = handler(retry)
    except ValidationError:
        return []
    bad_fields = {name for name in cls.model_fields if env_var(name) in bad}
    kept: list[SettingProblem] = []
    for problem in settings._cross_field_problems():
        if problem.variable in bad:
            continue
        if any(env_var(name) in problem.message for name in bad_fields):
            continue
        kept.append(problem)
    return kept


def _to_settings_error(exc: ValidationError) -> KafkaSettingsError:
    return KafkaSettingsError(_problems_from(exc))
