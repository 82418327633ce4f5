"""Errors of settlement. Each names what is wrong in terms an operator can act on; the CLI turns
them into a message and a non-zero exit (file input errors as ``file:line``)."""

from __future__ import annotations

from tariffs.errors import Problem


class SettlementError(Exception):
    """Base class: a settlement step refused."""


class TransitionError(SettlementError):
    """A period or dispute asked to take a step its state does not allow."""


class NotBalancedError(SettlementError):
    """The period identity does not hold to the micro-unit: approval is refused."""


class InputFileError(SettlementError):
    """An invoice or detail file with problems; every problem is listed as ``file:line``."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
