"""Field types whose refusals are worded for people, shared by the settings and the search parameters.

Pydantic validates; these add the project's words (``k must be between 1 and 500, got 0``) where pydantic's own
(``Input should be less than or equal to 500``) would not say what is accepted.
"""
from __future__ import annotations

import re
import reprlib
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import ErrorDetails, PydanticCustomError, core_schema

from config.choices import Choice

# ASCII digits only: int() would also take '١٢', '1_0', ' 7 ' and, from JSON, true and 2.0. (30 digits are far past
# any count: a longer string is no number a person meant.)
WHOLE_NUMBER = re.compile(r"-?[0-9]{1,30}")
# Pydantic's own error types, in the same words as ours.
WORDS = {"int_parsing": "must be a whole number", "int_from_float": "must be a whole number",
         "int_type": "must be a whole number", "float_parsing": "must be a number", "float_type": "must be a number",
         "string_type": "must be a string", "bool_parsing": "must be true or false (1/0, yes/no, on/off)"}


def _whole_number(value: Any) -> Any:
    if type(value) is int or (isinstance(value, str) and WHOLE_NUMBER.fullmatch(value)):
        return int(value)
    raise PydanticCustomError("whole_number", "must be a whole number")


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]


class OneOf:
    """Metadata for a ``Choice`` field (``Annotated[Metric, OneOf()]``): refused with the list of its names."""

    def __get_pydantic_core_schema__(self, source: type[Choice], handler: GetCoreSchemaHandler):
        def named(value: Any) -> Any:
            if not isinstance(value, str):
                raise PydanticCustomError("string_type", "must be a string")
            if value not in source.values():
                raise PydanticCustomError("choice", "must be one of {choices}", {"choices": ", ".join(source)})
            return value

        return core_schema.no_info_before_validator_function(named, handler(source))


@dataclass(frozen=True)
class Between:
    """Metadata for a number in ``[low, high]``: checked, and published as the JSON schema's minimum and maximum."""

    low: int
    high: int

    def __get_pydantic_core_schema__(self, source: type, handler: GetCoreSchemaHandler):
        def within(value: Any) -> Any:
            if not self.low <= value <= self.high:
                raise PydanticCustomError("range", "must be between {low} and {high}",
                                          {"low": self.low, "high": self.high})
            return value

        return core_schema.no_info_after_validator_function(within, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> dict:
        return {**handler(schema), "minimum": self.low, "maximum": self.high}


def complaint(name: str, error: ErrorDetails) -> str:
    """One validation error as a sentence naming the field (or variable) and the value it was given.

    Our own errors' messages say ``must …``; pydantic's are reworded by ``WORDS`` or quoted.
    """
    if error["type"] == "missing":  # its input is the whole object, which says nothing
        return f"{name} is required"
    message = error["msg"]
    words = WORDS.get(error["type"], message if message.startswith("must ") else f"is invalid ({message})")
    return f"{name} {words}, got {reprlib.repr(error['input'])}"
