"""Locations in the configuration tree: the key paths issues point at, and the models at them."""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

Location = tuple[str | int, ...]


def format_location(location: Location) -> str:
    """Render a key path the way a user reads it: ``streams[1].source``; ``""`` for the root."""
    text = ""
    for key in location:
        if isinstance(key, int):
            text += f"[{key}]"
        else:
            text += f".{key}" if text else str(key)
    return text


def model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field annotation holds (``X``, ``X | None``), or None for a plain value."""
    if get_origin(annotation) in (Union, types.UnionType):
        models = [model_in(arg) for arg in get_args(annotation) if arg is not type(None)]
        return models[0] if len(models) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def list_item_model(annotation: Any) -> type[BaseModel] | None:
    """The item model of a ``list[X]`` field annotation, or None if it is not a list of models."""
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        return model_in(item)
    return None


def dict_value_model(annotation: Any) -> type[BaseModel] | None:
    """The value model of a ``dict[str, X]`` field annotation, or None."""
    if get_origin(annotation) is dict:
        _key, value = get_args(annotation)
        return model_in(value)
    return None


def model_at(root: type[BaseModel], location: Location) -> type[BaseModel] | None:
    """The model whose fields are the keys found at `location`, or None if there is none.

    ``model_at(VigilConfig, ("streams", 2))`` is ``StreamConfig``; ``("log",)`` is ``LogConfig``.
    """
    model: type[BaseModel] | None = root
    item_model: type[BaseModel] | None = None
    for key in location:
        if isinstance(key, int):
            model, item_model = item_model, None
            continue
        if model is None or key not in model.model_fields:
            return None
        annotation = model.model_fields[key].annotation
        model, item_model = model_in(annotation), list_item_model(annotation)
    return model


def field_names(model: type[BaseModel]) -> list[str]:
    """The keys a model accepts, in declaration order."""
    return list(model.model_fields)
