"""Declarative number normalisation: what an MNO's file writes → E.164 digits without ``+``.

Host MNOs write numbers every way there is (``+4917099..``, ``004917099..``, ``017099..``,
``4917099..``, ``tel:+49..``, with spaces or dashes). The mapping states the rules and this
module applies them in one fixed order, so every rule is tested on its own:

1. ``tel:``/``sip:``/``sips:`` schemes and ``@host``/``;params`` are cut; the ``strip``
   characters (visual separators) are removed.
2. ``rewrite``: the first rule whose ``prefix`` starts the number replaces it (an MNO's own
   short codes or a broken prefix such as ``+0049``).
3. ``international_prefixes`` (default ``+`` and ``00``): what follows is already E.164.
4. ``national_prefix`` (default ``0``): what follows is national; ``country_code`` is put in
   front.
5. No prefix: ``bare`` says whether the digits are ``international`` (as gateways usually
   write them) or ``national`` (the country code is put in front).
6. The result must be ``min_digits``..15 ASCII digits, else the number is not one (``None``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import msgspec

E164_DIGITS_MAX = 15
NumberKind = Literal["international", "national"]
DEFAULT_STRIP = " -./()"


class Rewrite(msgspec.Struct, frozen=True):
    prefix: str
    replace: str


class NumberRules(msgspec.Struct, frozen=True):
    country_code: str
    international_prefixes: tuple[str, ...] = ("+", "00")
    national_prefix: str = "0"
    bare: NumberKind = "international"
    strip: str = DEFAULT_STRIP
    rewrite: tuple[Rewrite, ...] = ()
    min_digits: int = 3

    def normalise(self, raw: str) -> str | None:
        """``raw`` as E.164 digits (no ``+``), or None when it cannot be a number."""
        if (
            raw[:1] == "+"
            and "+" in self.international_prefixes
            and raw[1:].isdigit()
            and raw.isascii()
            and self.min_digits < len(raw) <= E164_DIGITS_MAX + 1
            and not any(raw.startswith(rule.prefix) for rule in self.rewrite)
        ):
            return raw[1:]  # the usual "+<digits>", answered without the general parse
        text = raw.strip()
        head = text[:5].lower()
        if head.startswith(("tel:", "sip:")):
            text = text[4:]
        elif head.startswith("sips:"):
            text = text[5:]
        text = text.split("@", 1)[0].split(";", 1)[0]
        if self.strip:
            text = text.translate(_delete(self.strip))
        for rule in self.rewrite:
            if text.startswith(rule.prefix):
                text = rule.replace + text[len(rule.prefix) :]
                break
        digits: str | None = None
        for prefix in self.international_prefixes:
            if text.startswith(prefix):
                digits = text[len(prefix) :]
                break
        if digits is None:
            if self.national_prefix and text.startswith(self.national_prefix):
                digits = self.country_code + text[len(self.national_prefix) :]
            elif self.bare == "national":
                digits = self.country_code + text
            else:
                digits = text
        if not (digits.isascii() and digits.isdigit()):
            return None
        if not self.min_digits <= len(digits) <= E164_DIGITS_MAX:
            return None
        return digits


@lru_cache(maxsize=64)
def _delete(chars: str) -> dict[int, int | None]:
    """The translate table deleting ``chars`` (built once per mapping's strip set)."""
    return str.maketrans("", "", chars)
