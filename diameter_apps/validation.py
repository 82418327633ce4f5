"""Checks of a decoded request against the dictionary (RFC 6733 §7, DESIGN B8/B9).

Raises the :mod:`diameter_apps.errors` class whose Result-Code RFC 6733 names for the fault,
with the offending AVP(s) as Failed-AVP. Under :attr:`Profile.LENIENT` the deviations real peers
make (Kamailio's duplicated Origin-Host / Origin-Realm, python-diameter's missing M bit, an M bit
where it must not be) are accepted and returned as descriptions for the adapter to log.

:class:`RequestChecker` is the request decoder of a peer connection: it walks a request AVP by
AVP with the checking decoder of :mod:`diameter_apps.codec`, and remembers the shape of the
requests it accepted, so that the next requests of the same shape (nearly all of a gateway's)
are checked with a few big-integer operations over the whole message instead.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from enum import Enum
from itertools import repeat
from operator import itemgetter
from typing import Any

import msgspec

from diameter_apps.codec import (
    HEADER_BYTES,
    KIND_ADDRESS,
    KIND_TEXT,
    Avp,
    AvpRule,
    AvpRules,
    Message,
    Verdicts,
    decode_checked,
    message_of,
    rule_key,
)
from diameter_apps.codes import AVP_FLAG_MANDATORY, FLAG_ERROR, AvpCode
from diameter_apps.dictionary import (
    CommandDef,
    Dictionary,
)
from diameter_apps.errors import AvpOccursTooManyTimes, InvalidHeaderBits, MissingAvp
from diameter_apps.limits import DEFAULT_LIMITS, CodecLimits


class Profile(Enum):
    STRICT = "strict"
    LENIENT = "lenient"


_TOLERATED_DUPLICATES = frozenset({(int(AvpCode.ORIGIN_HOST), 0), (int(AvpCode.ORIGIN_REALM), 0)})


def avp_rules(dictionary: Dictionary) -> Mapping[int, AvpRule]:
    """The dictionary compiled to the compact per-AVP rules the checking decoder reads."""
    return dictionary.avp_rules()


_MULTIPLE_SERVICES_CREDIT_CONTROL = 456  # RFC 4006 codes: this base module imports no app
_SUBSCRIPTION_ID = 443
LAZY_GROUPS: frozenset[int] = frozenset(
    {rule_key(_MULTIPLE_SERVICES_CREDIT_CONTROL, 0), rule_key(_SUBSCRIPTION_ID, 0)}
)
"""Grouped AVPs (by ``rule_key``) whose children a request matching a remembered shape leaves
undecoded (``Avp.children()`` decodes them if asked): the credit-control parse reads the MSCCs
of a known shape straight from the frame, and Subscription-Ids by their payload bytes, so
building their children's AVP objects per request is work nobody reads."""

SHAPES_MAX = 64
"""Default ceiling on the request shapes one checker (one peer connection) remembers: a shape
takes a few KB; a gateway sends a handful (CCR-I/U/T, MSCC counts, Session-Id lengths)."""
_SHAPE_KEY_BYTES = 12
"""Version, length, flags, command code and application id: the header bytes a shape fixes."""
_SHAPES_PER_KEY = 8
"""Shapes tried per header key, newest first: bounds the matching work per request."""
_SHAPE_BUILD_COST = 8
_SHAPE_BUILD_CREDIT_MAX = 64
"""Computing a shape costs about one walk: each walked request earns one credit (up to the
maximum), each shape computed spends ``_SHAPE_BUILD_COST``. A peer whose requests keep
changing shape thus pays at most one shape in eight walks; the first shapes are immediate."""


class _Shape(msgspec.Struct, frozen=True, gc=False):
    """Everything the checks of one accepted request depended on, and where its AVPs lie.

    Two requests with the same bytes under ``mask`` (the header up to the application id, every
    AVP header, every Address family) and ASCII in every text payload (no bit of
    ``text_high_bits`` set) get the same verdict from every check of this module: AVP headers
    decide M bits, sizes, nesting, known/unknown, required and repeated AVPs; only UTF-8 and
    Address payloads are read, and those are covered by the two masks.
    """

    mask: int
    skeleton: int
    text_high_bits: int
    # Where the AVPs lie, as columns (one item per AVP, each run -- the message body, then each
    # decoded Grouped in turn -- contiguous) so that ``map`` builds them without a Python loop.
    codes: tuple[int, ...]
    flags: tuple[int, ...]
    vendors: tuple[int, ...]
    payloads: Callable[[bytes], tuple[bytes, ...]]
    """Cuts every payload out of a matching request in one C call (an ``itemgetter`` of
    slices: about half the cost of slicing one by one)."""
    depths: tuple[int, ...]
    group_entries: Callable[[list[Avp]], tuple[Avp, ...]]
    """The entry of each decoded Grouped AVP ..."""
    group_children: Callable[[list[Avp]], tuple[list[Avp], ...]]
    """... and the entries of its children (itemgetters too, see ``payloads``)."""
    top_count: int
    positions: dict[tuple[int, int], tuple[int, ...]]
    """Where each (code, vendor) occurs among the top-level AVPs (shared: read only)."""
    deviations: tuple[str, ...]

    def message(self, data: bytes) -> Message:
        """The request ``data`` (which matched this shape) with every AVP in place."""
        # Children are set below; the wire form is computed if ever encoded.
        avps = list(
            map(Avp, self.codes, self.flags, self.vendors, self.payloads(data), self.depths)
        )
        deque(
            map(setattr, self.group_entries(avps), repeat("_children"), self.group_children(avps)),
            maxlen=0,
        )
        return message_of(data, avps[: self.top_count], self.positions)


def _shape_of(
    data: bytes, message: Message, rules: AvpRules, deviations: list[str], lazy: frozenset[int]
) -> _Shape:
    """The shape of ``data``, just decoded to ``message`` and accepted with ``deviations``;
    the children of the ``lazy`` Grouped AVPs are checked by the mask but not built."""
    size = len(data)
    mask = bytearray(size)
    mask[:_SHAPE_KEY_BYTES] = b"\xff" * _SHAPE_KEY_BYTES
    text_high = bytearray(size)
    entries: list[tuple[int, int, int, int, int, int]] = []
    groups: list[tuple[int, int, int]] = []
    # (entry of the parent or -1, AVPs, offset, depth, whether its AVPs are built)
    runs: list[tuple[int, list[Avp], int, int, bool]] = [(-1, message.avps, HEADER_BYTES, 1, True)]
    for parent, avps, start, depth, built in runs:  # grows while iterating: breadth first
        first = len(entries)
        pos = start
        for avp in avps:
            header = 12 if avp.flags & 0x80 else 8
            begin = pos + header
            stop = begin + len(avp.data)
            mask[pos:begin] = b"\xff" * header
            rule_at = (avp.vendor << 32) | avp.code
            rule = rules.get(rule_at)
            kind = 0 if rule is None else rule[2]
            if kind == KIND_TEXT:
                text_high[begin:stop] = b"\x80" * (stop - begin)
            elif kind == KIND_ADDRESS:
                mask[begin : begin + 2] = b"\xff\xff"
            if avp._children is not None:
                build = built and not (rule_at in lazy and _decodes_alike(avp))
                runs.append((len(entries) if build else -1, avp._children, begin, depth + 1, build))
            if built:
                entries.append((avp.code, avp.flags, avp.vendor, begin, stop, depth))
            pos = (stop + 3) & ~3
        if parent >= 0:
            groups.append((parent, first, len(entries)))
    mask_bits = int.from_bytes(mask, "big")
    positions: dict[tuple[int, int], tuple[int, ...]] = {}
    for at, avp in enumerate(message.avps):
        key = (avp.code, avp.vendor)
        positions[key] = (*positions.get(key, ()), at)
    return _Shape(
        mask=mask_bits,
        skeleton=int.from_bytes(data, "big") & mask_bits,
        text_high_bits=int.from_bytes(text_high, "big"),
        codes=tuple(e[0] for e in entries),
        flags=tuple(e[1] for e in entries),
        vendors=tuple(e[2] for e in entries),
        payloads=_getter([slice(e[3], e[4]) for e in entries]),
        depths=tuple(e[5] for e in entries),
        group_entries=_getter([g[0] for g in groups]),
        group_children=_getter([slice(g[1], g[2]) for g in groups]),
        top_count=len(message.avps),
        positions=positions,
        deviations=tuple(deviations),
    )


def _decodes_alike(group: Avp) -> bool:
    """Whether ``Avp.children()`` (default limits, no checks) would decode ``group``'s subtree
    as the checking decoder did: the peer's limits may be wider than the defaults."""
    kids = group._children
    if kids is None:
        return True
    if group.depth >= DEFAULT_LIMITS.avp_depth_max or len(kids) > DEFAULT_LIMITS.avps_max:
        return False
    return all([_decodes_alike(kid) for kid in kids])


def _getter(items: list[Any]) -> Callable[[Any], tuple[Any, ...]]:
    """``items`` of a sequence as a tuple, in one C call for two or more."""
    if len(items) >= 2:
        return itemgetter(*items)
    # itemgetter of one item returns the item, not a 1-tuple (and of none, cannot be built).
    return lambda sequence: tuple([sequence[item] for item in items])


class RequestChecker:
    """Decodes and checks requests (RFC 6733 §7, DESIGN B8/B9) for one dictionary and profile.

    Cheap to build (the dictionary compiles its rules once). The checker remembers the
    *shape* of each request it accepted (see :class:`_Shape`): a request matching one is
    accepted with the same deviations without walking its AVPs again, so it costs a few big-int
    operations plus building its AVP objects. A gateway's requests of one kind nearly always
    share a shape (same AVPs, same lengths; the values differ). A request of a new shape is
    walked and checked AVP by AVP (tens of µs for a CCR), then its shape is computed once
    (about as much again). Requests with non-ASCII text are always walked (UTF-8 is then
    checked the long way) and never remembered. At most ``shapes_max`` shapes are kept (``0``
    turns the memory off); when full the oldest shapes go, and a peer sending ever-new shapes
    costs at most an eighth of a walk more per request (see ``_SHAPE_BUILD_COST``).
    A request matching a shape has the children of its ``lazy_groups`` (see LAZY_GROUPS)
    undecoded until asked for; a walked request has every known Grouped AVP decoded.
    """

    __slots__ = (
        "_dictionary",
        "_lazy",
        "_limits",
        "_rules",
        "_shape_count",
        "_shape_credit",
        "_shapes",
        "_shapes_max",
        "_strict",
        "_verdicts",
    )

    def __init__(
        self,
        dictionary: Dictionary,
        profile: Profile,
        limits: CodecLimits,
        *,
        shapes_max: int = SHAPES_MAX,
        lazy_groups: frozenset[int] = LAZY_GROUPS,
    ) -> None:
        self._dictionary = dictionary
        self._lazy = lazy_groups
        self._limits = limits
        self._rules = avp_rules(dictionary)
        self._strict = profile is Profile.STRICT
        # The rules resolved per (code, flags, vendor) as they are met: after the first few
        # requests, one dict lookup per AVP decides what is left to check (see decode_checked).
        self._verdicts: Verdicts = {}
        self._shapes: dict[bytes, list[_Shape]] = {}
        self._shape_count = 0
        self._shapes_max = shapes_max
        self._shape_credit = _SHAPE_BUILD_CREDIT_MAX

    @property
    def shape_count(self) -> int:
        """Request shapes remembered now (at most ``shapes_max``)."""
        return self._shape_count

    def decode(self, data: bytes) -> tuple[Message, list[str]]:
        """A request from one frame, checked; returns it with the tolerated deviations.

        Raises the DiameterError of the first fault, its ``request`` set for the answer.
        """
        shapes = self._shapes.get(data[:_SHAPE_KEY_BYTES])
        if shapes is not None:
            value = int.from_bytes(data, "big")
            for shape in shapes:
                if value & shape.mask == shape.skeleton and not value & shape.text_high_bits:
                    return shape.message(data), list(shape.deviations)
        message, deviations = self._walk(data)
        if self._shapes_max:
            self._remember(data, message, deviations)
        return message, deviations

    def _walk(self, data: bytes) -> tuple[Message, list[str]]:
        message, deviations = decode_checked(
            data, self._limits, self._rules, strict=self._strict, verdicts=self._verdicts
        )
        check_header_bits(message)
        command = self._dictionary.command(message.command_code)
        if command is not None:
            _check_occurrences(message, command, self._strict, deviations)
        if (
            message.avps
            and message.avps[0].code != AvpCode.SESSION_ID
            and message.find(AvpCode.SESSION_ID)
        ):
            deviations.append("Session-Id is not the first AVP")
        return message, deviations

    def _remember(self, data: bytes, message: Message, deviations: list[str]) -> None:
        credit = min(self._shape_credit + 1, _SHAPE_BUILD_CREDIT_MAX)
        if credit < _SHAPE_BUILD_COST:
            self._shape_credit = credit
            return
        self._shape_credit = credit - _SHAPE_BUILD_COST
        shape = _shape_of(data, message, self._rules, deviations, self._lazy)
        if int.from_bytes(data, "big") & shape.text_high_bits:
            return  # non-ASCII text: this very request would not match its shape
        shapes = self._shapes
        while self._shape_count >= self._shapes_max:
            self._shape_count -= len(shapes.pop(next(iter(shapes))))  # the oldest key's
        candidates = shapes.setdefault(data[:_SHAPE_KEY_BYTES], [])
        candidates.insert(0, shape)
        if len(candidates) > _SHAPES_PER_KEY:
            candidates.pop()
        else:
            self._shape_count += 1

    def check(self, message: Message) -> list[str]:
        """The same checks for a message built in memory (encodes it first)."""
        return self.decode(message.encode())[1]


def check_header_bits(message: Message) -> None:
    """A request with the E bit set is 3008 (RFC 6733 §3: E is only for answers)."""
    if message.flags & FLAG_ERROR:
        raise InvalidHeaderBits("the E bit is set in a request", request=message)


def _check_occurrences(
    message: Message, command: CommandDef, strict: bool, deviations: list[str]
) -> None:
    index = message.index()
    for key in command.request_required:
        if key not in index:
            code, vendor = key
            missing = Avp(code, AVP_FLAG_MANDATORY | (0x80 if vendor else 0), vendor, b"")
            raise MissingAvp(
                f"{command.name}-Request lacks required AVP {code}",
                failed_avps=(missing,),
                request=message,
            )
    for key in command.at_most_once:
        occurrences = index.get(key)
        if occurrences is not None and len(occurrences) > 1:
            if not strict and key in _TOLERATED_DUPLICATES:
                deviations.append(
                    f"AVP {key[0]} occurs {len(occurrences)} times; the first is used"
                )
                continue
            repeats = occurrences[1:]
            raise AvpOccursTooManyTimes(
                f"AVP {key[0]} may occur once in {command.name}-Request",
                failed_avps=repeats[:1],
                request=message,
            )
