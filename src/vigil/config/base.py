"""The base every configuration model inherits: strict, immutable, and quiet about its inputs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

# Key under which a validator tells the loader where, below the field it validates, the
# problem really is (pydantic errors carry no location finer than the field being validated).
SUB_LOCATION_KEY = "vigil_sub_location"


class BaseConfig(BaseModel):
    """Base of every ``XxxConfig``: unknown keys are errors, instances are frozen.

    ``hide_input_in_errors`` keeps a bad value out of ``str(ValidationError)``: a model built
    directly (say, from an API request) must not put a camera password in a log line through
    pydantic's ``input_value=...`` suffix.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_default=True,
        hide_input_in_errors=True,
    )


def located_error(
    sub_location: tuple[str | int, ...], error_type: str, message: str, **context: Any
) -> PydanticCustomError:
    """Build a validation error that points below the validated field.

    Raise it from a field or model validator: the loader appends `sub_location` to the
    validator's location, so a duplicate stream name is reported at ``streams[2].name`` rather
    than ``streams``.
    `message` is a ``str.format`` template over `context`.
    """
    return PydanticCustomError(error_type, message, {**context, SUB_LOCATION_KEY: sub_location})
