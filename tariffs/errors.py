"""Errors of the catalog (refused at load, with every problem listed) and of rating (a usage that
cannot be priced, carrying the Diameter Result-Code the answer must use)."""

from __future__ import annotations

from enum import IntEnum

import msgspec


class ResultCode(IntEnum):
    """The Diameter Result-Codes rating can cause (RFC 4006 §9)."""

    RATING_FAILED = 5031
    USER_UNKNOWN = 5030


class Problem(msgspec.Struct, frozen=True):
    """One thing wrong in a catalog, located in its source file."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


class CatalogError(ValueError):
    """A catalog that cannot be used. ``problems`` lists every problem found, in file order."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems) or "invalid catalog")


class RatingError(Exception):
    """Usage that cannot be priced. It is never free: the request is answered with ``result_code``
    (5031 DIAMETER_RATING_FAILED unless stated otherwise)."""

    def __init__(self, message: str, result_code: ResultCode = ResultCode.RATING_FAILED) -> None:
        super().__init__(message)
        self.result_code = result_code
