"""EnvSettings: the base of every CoffeeBuddy settings object read from the environment.

One variable prefix per class, every problem reported at once naming its variable, secrets never
shown, and a variable under the prefix that is no setting but close to one gets "did you mean"
(logged, and added to the problem of the variable it was meant for), as `KafkaSettings` does.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import ModelWrapValidatorHandler, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from coffeebuddy.infra.kafka.config._env import ENVIRON, MappingEnvSource, env_var, with_typo_hints
from coffeebuddy.infra.kafka.config._errors import SettingProblem, SettingsError
from coffeebuddy.infra.kafka.config._problems import problems_from

__all__ = ["EnvSettings"]

logger = logging.getLogger("coffeebuddy.infra.kafka.config")


class EnvSettings(BaseSettings):
    """Subclass with `model_config = SettingsConfigDict(env_prefix="X_")`, declare fields, and
    override `problems()` for rules between fields; build it with `from_env()`."""

    model_config = SettingsConfigDict(
        case_sensitive=False,
        env_ignore_empty=True,
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
        validate_default=True,
    )

    LABEL: ClassVar[str] = "this"
    """Names the settings in messages ("REMINDER_X is not a reminder setting")."""
    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, **values: Any) -> None:
        cls = type(self)
        try:
            super().__init__(**values)
        except ValidationError as exc:
            error = SettingsError(
                problems_from(exc, cls.model_fields, cls.variable, cls.SECRET_FIELDS, cls.LABEL),
                f"{cls.LABEL} configuration",
            )
        else:
            return
        raise error  # outside the except block: no __context__ holding raw inputs

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
        """Keyword arguments, then the environment (or from_env's mapping); no dotenv."""
        return (init_settings, MappingEnvSource(settings_cls))

    @classmethod
    def prefix(cls) -> str:
        return str(cls.model_config.get("env_prefix", ""))

    @classmethod
    def variable(cls, field: str) -> str:
        """The environment variable of `field` (its alias, when it has one)."""
        info = cls.model_fields.get(field)
        alias = info.validation_alias if info is not None else None
        return alias.upper() if isinstance(alias, str) else env_var(field, cls.prefix())

    @classmethod
    def prefixes(cls) -> tuple[str, ...]:
        """Variable prefixes this class owns: a variable under one that is no setting is a typo."""
        return (cls.prefix(),) if cls.prefix() else ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read the settings from `environ` (default `os.environ`); raises `SettingsError`
        listing every problem."""
        mapping = dict(environ) if environ is not None else dict(os.environ)
        typos = cls.typos(mapping)
        for typo, meant in typos.items():
            logger.warning("%s is not a %s setting; did you mean %s?", typo, cls.LABEL, meant)
        token = ENVIRON.set(mapping)
        try:
            return cls()
        except SettingsError as exc:
            error = with_typo_hints(exc, typos) if typos else exc
        finally:
            ENVIRON.reset(token)
        raise error

    @classmethod
    def typos(cls, environ: Mapping[str, str]) -> dict[str, str]:
        """{variable set: variable meant} for names under the prefixes close to a setting's."""
        known = [cls.variable(name) for name in cls.model_fields]
        typos: dict[str, str] = {}
        for key in environ:
            upper = key.upper()
            if upper.startswith(cls.prefixes()) and upper not in known:
                match = difflib.get_close_matches(upper, known, n=1, cutoff=0.85)
                if match:
                    typos[key] = match[0]
        return typos

    @classmethod
    def defaults(cls) -> Self:
        """The defaults alone (no environment): what a library uses when given nothing."""
        return cls.from_env({})

    @model_validator(mode="wrap")
    @classmethod
    def _every_problem(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        try:
            settings = handler(data)
        except ValidationError as exc:
            problems = problems_from(
                exc, cls.model_fields, cls.variable, cls.SECRET_FIELDS, cls.LABEL
            )
        else:
            problems = settings.problems()
            if not problems:
                return settings
        raise SettingsError(problems, f"{cls.LABEL} configuration")

    def problems(self) -> list[SettingProblem]:
        """Rules between fields (each field's own rules are its declaration's)."""
        return []
