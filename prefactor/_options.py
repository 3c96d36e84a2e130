"""How a configuration value is checked: one path for code, config objects and the environment.

Every option is a typed pydantic field with its constraints, on
:class:`~prefactor.HttpClientConfig`, :class:`~prefactor.QueueConfig` or
:class:`~prefactor.PrefactorCoreConfig`. Building or changing one of those
objects, calling :func:`prefactor.configure` and reading a ``PREFACTOR_*``
environment variable all check a value against its field, and a value that does
not fit is described by :func:`problem` in one wording: the option, what it
accepts, and the value given (never for a secret)::

    num_workers must be from 1 to 20 (an integer), got 0
    api_url is required: an http:// or https:// URL

Code gets that sentence as a :class:`~prefactor.PrefactorConfigError`; the
environment gets it logged (see :mod:`prefactor._config`).
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self, Union

import annotated_types
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    SecretStr,
    TypeAdapter,
    ValidationError,
)
from pydantic.fields import FieldInfo
from pydantic_core import CoreSchema, ErrorDetails, core_schema

from prefactor._errors import PrefactorConfigError, PrefactorError
from prefactor._redaction import redact_credentials

__all__ = [
    "Accepts",
    "CredentialFreeRepr",
    "Flag",
    "OptionalFlag",
    "Options",
    "SecretToken",
    "Unfit",
    "accepts",
    "check_field",
    "problem",
    "require",
]

_MASK = "**********"
_UNSET: Any = object()


@dataclass(frozen=True)
class Accepts:
    """Field metadata: what an option accepts, in words, and whether its value is a secret."""

    text: str
    secret: bool = False


class Unfit(PrefactorError, ValueError):
    """Raised by a field's own check: the value does not fit; the field's ``Accepts`` says why."""


def problem(
    option: str, accepts: str, value: Any = _UNSET, *, required: bool = True, secret: bool = False
) -> str:
    """The one wording of a refused value: ``<option> must be <accepts>, got <value>``.

    A missing value (or a blank string, for a required option) reads ``<option>
    is required: <accepts>``; a secret's value is never shown.
    """
    blank = value is None or (isinstance(value, str) and not value.strip())
    if value is _UNSET or (required and blank):
        return f"{option} is required: {accepts}"
    if secret:
        return f"{option} must be {accepts}"
    return f"{option} must be {accepts}, got {value!r}"


def require(option: str, value: Any, kind: type) -> None:
    """Refuse ``value`` unless it is ``None`` or a ``kind`` (an option that takes an object).

    Raises:
        PrefactorConfigError: in :func:`problem`'s words, naming ``prefactor.<kind>``.
    """
    if value is not None and not isinstance(value, kind):
        raise PrefactorConfigError(problem(option, f"a prefactor.{kind.__name__}", value), option)


# --- value types ------------------------------------------------------------------------

_FLAG_WORDS = {"1": True, "true": True, "yes": True, "on": True}
_FLAG_WORDS |= {"0": False, "false": False, "no": False, "off": False}
FLAG_TEXT = "true or false (or 1/0, yes/no, on/off)"


def _flag(value: object) -> object:
    if value is None or isinstance(value, bool):
        return value
    if type(value) is int and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _FLAG_WORDS:
        return _FLAG_WORDS[value.strip().lower()]
    raise Unfit


Flag = Annotated[bool, BeforeValidator(_flag), Accepts(FLAG_TEXT)]
"""A boolean option; the words an environment variable may hold are accepted in code too."""

OptionalFlag = Annotated[bool | None, BeforeValidator(_flag), Accepts(FLAG_TEXT)]
"""A boolean option where ``None`` means "not set here: ask the environment"."""


class SecretToken(str):
    """A string that keeps itself out of reprs: the value of an API token.

    It compares, formats and encodes as the plain token (so ``config.api_token``
    reads as the string it was given), but ``repr()``, and so every config repr
    and traceback, shows ``'**********'``; JSON dumps mask it too.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(_MASK)

    def get_secret_value(self) -> str:
        """The plain token (the same as ``str(token)``)."""
        return str.__str__(self)

    @classmethod
    def coerce(cls, value: object) -> SecretToken:
        """A token from a string or a pydantic ``SecretStr``; blank is refused."""
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if not isinstance(value, str) or not value.strip():
            raise Unfit
        return value if isinstance(value, SecretToken) else cls(value)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.coerce,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda _: _MASK, when_used="json"
            ),
        )


# --- describing a field -----------------------------------------------------------------


def _metadata(field: FieldInfo) -> list[Any]:
    """The field's metadata, including what sits in ``Annotated`` inside ``X | None``."""
    found = list(field.metadata)
    stack = [field.annotation]
    while stack:
        tp = stack.pop()
        if typing.get_origin(tp) is Annotated:
            inner, *extras = typing.get_args(tp)
            found.extend(extras)
            stack.append(inner)
        elif typing.get_origin(tp) in (Union, types.UnionType):
            stack.extend(typing.get_args(tp))
    return found


def _base(annotation: Any) -> Any:
    """``X`` from ``X``, ``X | None`` or ``Annotated[X, ...]``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _bounds(metadata: list[Any], kind: str) -> str:
    ge = next((m.ge for m in metadata if isinstance(m, annotated_types.Ge)), None)
    gt = next((m.gt for m in metadata if isinstance(m, annotated_types.Gt)), None)
    le = next((m.le for m in metadata if isinstance(m, annotated_types.Le)), None)
    if le is not None and ge is not None:
        return f"from {ge} to {le} ({kind})"
    if gt == 0 and le is None:
        return f"positive ({kind})"
    if ge == 0 and le is None:
        return f"non-negative ({kind})"
    if ge is not None:
        return f">= {ge} ({kind})"
    if gt is not None:
        return f"> {gt} ({kind})"
    return kind


def accepts(field: FieldInfo) -> Accepts:
    """What ``field`` accepts, in words: its own ``Accepts`` or one built from its type."""
    metadata = _metadata(field)
    for item in metadata:
        if isinstance(item, Accepts):
            return item
    base = _base(field.annotation)
    if typing.get_origin(base) is Literal:
        return Accepts("one of " + ", ".join(repr(v) for v in typing.get_args(base)))
    if base is int:
        return Accepts(_bounds(metadata, "an integer"))
    if base is float:
        return Accepts(_bounds(metadata, "a number"))
    if base is Path:
        return Accepts("a file path")
    if base is str:
        return Accepts("a string")
    return Accepts(f"a {getattr(base, '__name__', base)}")


def _owned_model(annotation: Any) -> type[BaseModel] | None:
    base = _base(annotation)
    return base if isinstance(base, type) and issubclass(base, BaseModel) else None


def _describe(
    model: type[BaseModel], error: ErrorDetails, names: Mapping[str, str]
) -> tuple[str, str]:
    """``(option, sentence)`` for one pydantic error on ``model`` (options renamed by ``names``)."""
    loc, kind = error["loc"], error["type"]
    cause = (error.get("ctx") or {}).get("error")
    owner: type[BaseModel] | None = model
    field: FieldInfo | None = None
    path: list[str] = []
    for part in loc[:-1] if kind == "extra_forbidden" else loc:
        # Parts that are not fields (union members, list indices) only say how pydantic got there.
        if isinstance(part, str) and owner is not None and part in owner.model_fields:
            field = owner.model_fields[part]
            path.append(part)
            owner = _owned_model(field.annotation)
    option = ".".join(path)
    option = names.get(option, option)
    if kind == "extra_forbidden":
        name = str(loc[-1])
        known = ", ".join((owner or model).model_fields)
        return name, f"{(owner or model).__name__} has no option {name!r} (options: {known})"
    if isinstance(cause, Exception) and not isinstance(cause, Unfit):
        # A check across options, or a nested config's own error: its message says it all.
        return getattr(cause, "option", None) or option, str(cause)
    if field is None:
        return option, error["msg"]
    what = accepts(field)
    value = _UNSET if kind == "missing" else error.get("input")
    return option, problem(
        option, what.text, value, required=field.is_required(), secret=what.secret
    )


def config_error(
    model: type[BaseModel],
    errors: ValidationError | Iterable[ErrorDetails],
    names: Mapping[str, str] | None = None,
) -> PrefactorConfigError:
    """The :class:`PrefactorConfigError` for a failed validation of ``model``.

    ``names`` renames options in the message (an option known by another name).
    """
    if isinstance(errors, ValidationError):
        errors = errors.errors(include_url=False)
    sentences: dict[str, str] = {}
    for error in errors:
        option, sentence = _describe(model, error, names or {})
        sentences.setdefault(option, sentence)
    return PrefactorConfigError("; ".join(sentences.values()), next(iter(sentences), None) or None)


@functools.cache
def _adapter(field: FieldInfo) -> TypeAdapter[Any]:
    return TypeAdapter(field.rebuild_annotation())


def check_field(model: type[BaseModel], option: str, value: Any, label: str | None = None) -> Any:
    """``value`` checked (and converted) as ``model``'s option ``option`` would be.

    Raises:
        PrefactorConfigError: the value does not fit, in the same words as the
            model's (naming the option ``label``, when given).
    """
    try:
        return _adapter(model.model_fields[option]).validate_python(value)
    except ValidationError as exc:
        errors = [{**e, "loc": (option, *e["loc"])} for e in exc.errors(include_url=False)]
        failure = config_error(model, errors, {option: label} if label else None)  # type: ignore[arg-type]
    raise failure


# --- the base of the config objects -----------------------------------------------------


class CredentialFreeRepr(BaseModel):
    """A model whose repr shows every text value with URL passwords redacted.

    Endpoints may carry credentials (``https://user:password@host``); a repr ends up
    in logs and tracebacks, so it never shows them.
    """

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, redact_credentials(value) if isinstance(value, str) else value


class Options(CredentialFreeRepr):
    """A config object: typed options, checked when it is built and when one is changed.

    Any failure is a :class:`PrefactorConfigError` in :func:`problem`'s words,
    raised outside pydantic's error so that no refused value (a token) rides
    along in the exception's context.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # Whether the options may also be given positionally, in declaration order.
    _positional: ClassVar[bool] = False

    def __init__(self, /, *args: Any, **data: Any) -> None:
        if args:
            data = self._by_name(args, data)
        try:
            super().__init__(**data)
        except ValidationError as exc:
            failure = config_error(type(self), exc)
        else:
            return
        raise failure

    @classmethod
    def _by_name(cls, args: tuple[Any, ...], data: dict[str, Any]) -> dict[str, Any]:
        names = list(cls.model_fields)
        if not cls._positional or len(args) > len(names):
            limit = len(names) if cls._positional else 0
            raise TypeError(f"{cls.__name__}() takes {limit} positional arguments, got {len(args)}")
        for name, value in zip(names, args, strict=False):
            if name in data:
                raise TypeError(f"{cls.__name__}() got multiple values for argument {name!r}")
            data[name] = value
        return data

    def __setattr__(self, name: str, value: Any) -> None:
        cls = type(self)
        if name not in cls.model_fields and not name.startswith("_"):
            known = ", ".join(cls.model_fields)
            raise PrefactorConfigError(
                f"{cls.__name__} has no option {name!r} (options: {known})", name
            )
        before = self.__dict__.get(name, _UNSET)
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:
            failure = config_error(cls, exc)
        else:
            return
        # A check across options fails after pydantic stored the value: put the old one back.
        if before is not _UNSET:
            self.__dict__[name] = before
        raise failure

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        """Build from a mapping (or object); refused values raise :class:`PrefactorConfigError`."""
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as exc:
            failure = config_error(cls, exc)
        raise failure

    @classmethod
    def check(cls, option: str, value: Any, label: str | None = None) -> Any:
        """One option's value, checked and converted as this class does (:func:`check_field`)."""
        return check_field(cls, option, value, label)
