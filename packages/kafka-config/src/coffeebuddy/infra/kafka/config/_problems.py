"""Pydantic's validation errors as SettingProblems: one line each, naming the variable."""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin

from pydantic import ModelWrapValidatorHandler, ValidationError
from pydantic.fields import FieldInfo

from coffeebuddy.infra.kafka.config._env import env_var
from coffeebuddy.infra.kafka.config._errors import KafkaSettingsError, SettingProblem, SettingsError

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.config._settings import KafkaSettings

#: Fields whose values never appear in a message.
SECRET_FIELDS = frozenset({"sasl_password", "ssl_key_password"})


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


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _shown(field: str, value: Any, secrets: frozenset[str] = SECRET_FIELDS) -> str:
    if field in secrets:
        return ""
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f" (got {text})"


def _problem_for(
    error: Mapping[str, Any],
    fields: Mapping[str, FieldInfo],
    variable_of: Callable[[str], str] = env_var,
    secrets: frozenset[str] = SECRET_FIELDS,
    label: str = "Kafka",
) -> SettingProblem:
    loc = error.get("loc", ())
    field = str(loc[0]) if loc else ""
    variable = variable_of(field) if field else variable_of("*")
    kind = error.get("type", "")
    value = error.get("input")
    ctx = error.get("ctx") or {}
    got = _shown(field, value, secrets)
    field_info = fields.get(field)
    if kind == "missing":
        if field == "bootstrap_servers":
            return SettingProblem(variable, "is required (e.g. broker1:9092,broker2:9092)")
        return SettingProblem(variable, "is required")
    if kind == "extra_forbidden":
        return SettingProblem(variable, f"is not a {label} setting ({field!r} is unknown)")
    if kind == "literal_error" and field_info is not None:
        choices = _literal_choices(field_info.annotation) or []
        return SettingProblem(variable, f"must be one of {', '.join(str(c) for c in choices)}{got}")
    if kind in ("float_parsing", "float_type"):
        return SettingProblem(variable, f"must be a number{got}")
    if kind == "less_than_equal":
        return SettingProblem(variable, f"must be at most {_num(ctx.get('le'))}{got}")
    if kind == "less_than":
        return SettingProblem(variable, f"must be less than {_num(ctx.get('lt'))}{got}")
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return SettingProblem(variable, f"must be a whole number{got}")
    if kind in ("bool_parsing", "bool_type"):
        return SettingProblem(variable, f"must be true or false{got}")
    if kind == "greater_than":
        return SettingProblem(variable, f"must be greater than {_num(ctx.get('gt'))}{got}")
    if kind == "greater_than_equal":
        return SettingProblem(variable, f"must be at least {_num(ctx.get('ge'))}{got}")
    if kind == "value_error":
        inner = ctx.get("error")
        return SettingProblem(variable, str(inner) if inner is not None else "is invalid")
    message = str(error.get("msg", "is invalid"))
    return SettingProblem(variable, f"{message[:1].lower()}{message[1:]}{got}")


def problems_from(
    exc: ValidationError,
    fields: Mapping[str, FieldInfo],
    variable_of: Callable[[str], str] = env_var,
    secrets: frozenset[str] = SECRET_FIELDS,
    label: str = "Kafka",
) -> list[SettingProblem]:
    """Every problem of ``exc``; ``fields`` are the model's, for the choices of a Literal."""
    problems: list[SettingProblem] = []
    for error in exc.errors():
        inner = (error.get("ctx") or {}).get("error")
        if isinstance(inner, SettingsError):
            problems.extend(inner.problems)
        else:
            problems.append(_problem_for(error, fields, variable_of, secrets, label))
    return problems


def cross_problems_despite(
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


def to_settings_error(exc: ValidationError, fields: Mapping[str, FieldInfo]) -> KafkaSettingsError:
    """``exc`` as a KafkaSettingsError (raise it outside the except block: no raw inputs)."""
    return KafkaSettingsError(problems_from(exc, fields))
