"""What a search may be asked for — ``k``, ``metric``, ``scope`` and ``box`` — declared once.

The service checks every search against this model (the command line's, the evaluation's and the web's), the web
app reads a request's parameters with it before any work, and the OpenAPI document publishes its JSON schema.
"""
from __future__ import annotations

import re
import reprlib
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, WithJsonSchema
from pydantic_core import PydanticCustomError

from config.choices import Metric, Scope
from config.validation import Between, OneOf, WholeNumber, complaint
from search.localisation import Box

MAX_K = 500  # the most results one search returns
BOX = re.compile(r"-?[0-9]{1,9}(,-?[0-9]{1,9}){3}")  # x,y,w,h


class SearchError(ValueError):
    """A search request that cannot be answered as asked (bad parameters); the message says why."""


def _box(value: Any) -> Any:
    if isinstance(value, Box):
        return value
    if not (isinstance(value, str) and BOX.fullmatch(value)):
        raise PydanticCustomError("box", "must be x,y,w,h in whole pixels of the image (e.g. 10,20,300,400)")
    return Box(*map(int, value.split(",")))


class SearchParameters(BaseModel):
    """A search's parameters; None leaves the service's default (the settings')."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: Annotated[WholeNumber, Between(1, MAX_K)] | None = Field(
        None, description="results to return (default: the LOOKALIKE_TOP_K setting)")
    metric: Annotated[Metric, OneOf()] | None = None
    scope: Annotated[Scope, OneOf()] | None = Field(
        None, description="search the predicted category only, or every category")
    box: Annotated[Box, PlainValidator(_box), WithJsonSchema({
        "type": "string", "pattern": f"^{BOX.pattern}$",
        "description": "x,y,w,h: search only this region, in pixels of the uploaded image (upright); without it "
                       "the product is localised by the network. Outside the image: 400"})] | None = None

    @classmethod
    def read(cls, values: Mapping[str, Any]) -> SearchParameters:
        """The parameters from form values or a JSON object (the same rules for both); empty ones are left out.

        Raises:
            SearchError: naming the parameter, what it must be and what it was, or listing the unknown ones.
        """
        try:
            return cls.model_validate({name: value for name, value in values.items() if value not in (None, "")})
        except ValidationError as e:
            errors = e.errors()
        unknown = ", ".join(sorted(str(error["loc"][0]) for error in errors if error["type"] == "extra_forbidden"))
        if unknown:
            raise SearchError(f"unknown parameter(s): {unknown if len(unknown) <= 80 else reprlib.repr(unknown)}; "
                              f"allowed: {', '.join(cls.model_fields)}")
        raise SearchError(complaint(str(errors[0]["loc"][0]), errors[0]))

    def given(self) -> dict[str, Any]:
        """The parameters that were set, as keyword arguments of ``SearchService.search``."""
        return {name: value for name, value in self if value is not None}
