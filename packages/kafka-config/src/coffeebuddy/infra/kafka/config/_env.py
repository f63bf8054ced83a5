"""Where settings come from: ``KAFKA_*`` variable names, the mapping from_env() reads, typos."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from typing import TypeVar

from pydantic_settings import EnvSettingsSource

from coffeebuddy.infra.kafka.config._errors import SettingProblem, SettingsError

E = TypeVar("E", bound=SettingsError)

ENV_PREFIX = "KAFKA_"

# The environment mapping from_env() reads instead of os.environ (None: os.environ).
ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("kafka_settings_environ", default=None)


def env_var(field: str, prefix: str = ENV_PREFIX) -> str:
    """The environment variable that sets ``field`` (``acks`` -> ``KAFKA_ACKS``)."""
    return prefix + field.upper()


class MappingEnvSource(EnvSettingsSource):
    """The env source, reading the mapping given to from_env() when there is one."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        environ = ENVIRON.get()
        if environ is None:
            return super()._load_env_vars()
        loaded: dict[str, str | None] = {}
        for key, value in environ.items():
            if self.env_ignore_empty and value == "":
                continue
            loaded[key if self.case_sensitive else key.lower()] = value
        return loaded


def likely_typos(
    environ: Mapping[str, str], fields: Iterable[str], prefix: str = ENV_PREFIX
) -> dict[str, str]:
    """``<prefix>*`` names that are no setting but close to one: {given name: meant name}."""
    known = [env_var(name, prefix) for name in fields]
    typos: dict[str, str] = {}
    for key in environ:
        upper = key.upper()
        if upper.startswith(prefix) and upper not in known:
            match = difflib.get_close_matches(upper, known, n=1, cutoff=0.85)
            if match:
                typos[key] = match[0]
    return typos


def with_typo_hints(exc: E, typos: Mapping[str, str]) -> E:
    meant_to_typo = {meant: typo for typo, meant in typos.items()}
    return type(exc)(
        (
            SettingProblem(p.variable, f"{p.message} ({meant_to_typo[p.variable]} is set: a typo?)")
            if p.variable in meant_to_typo
            else p
            for p in exc.problems
        ),
        exc.what,
    )
