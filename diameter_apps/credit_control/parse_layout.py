"""Where the top-level AVPs of a CCR sit: which one is Session-Id, which are MSCCs, ...

Sorting a CCR's top-level AVPs depends on their codes and order alone, and every request of one
shape (see :class:`diameter_apps.validation.RequestChecker`: same AVPs, same order, same sizes)
has the same codes in the same order. A :class:`LayoutMemo` keeps the :class:`Layout` of each
shape it met, keyed by the positions map the checker shares between the requests of a shape, so
the parse of such a request takes its AVPs with two C calls instead of a Python loop over them,
and its MSCCs' values straight from the frame (:mod:`.parse_plan`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from operator import itemgetter
from typing import Any

from diameter_apps.codec import Avp, Message
from diameter_apps.codes import VENDOR_3GPP, AvpCode
from diameter_apps.credit_control.codes import CcAvp, GppAvp
from diameter_apps.credit_control.errors import AvpNotAllowed
from diameter_apps.credit_control.parse_faults import duplicate_avp
from diameter_apps.credit_control.parse_plan import ServicesReader, services_plan

_ACCOUNTING_RECORD_NUMBER = int(CcAvp.ACCOUNTING_RECORD_NUMBER)
_ACCOUNTING_RECORD_TYPE = int(CcAvp.ACCOUNTING_RECORD_TYPE)
_MULTIPLE_SERVICES_CREDIT_CONTROL = int(CcAvp.MULTIPLE_SERVICES_CREDIT_CONTROL)
_SUBSCRIPTION_ID = int(CcAvp.SUBSCRIPTION_ID)
_USED_SERVICE_UNIT = int(CcAvp.USED_SERVICE_UNIT)
_SERVICE_INFORMATION = int(GppAvp.SERVICE_INFORMATION)
_ORIGIN_HOST = int(AvpCode.ORIGIN_HOST)
_ORIGIN_REALM = int(AvpCode.ORIGIN_REALM)
_VSAI = int(AvpCode.VENDOR_SPECIFIC_APPLICATION_ID)

_TOLERATED_DUPLICATES = frozenset({_ORIGIN_HOST, _ORIGIN_REALM})
_ACCOUNTING_AVPS = frozenset({_ACCOUNTING_RECORD_TYPE, _ACCOUNTING_RECORD_NUMBER})

SERVICE_INFORMATION = -1
"""The field code that stands for the (3GPP) Service-Information AVP ..."""
VSAI = -2
"""... and for the first Vendor-Specific-Application-Id."""


class Layout:
    """The top-level AVPs of one request shape, sorted.

    ``fields([*avps, None])`` gives, in the order of the field ``codes`` the layout was made
    for, the first AVP of each code (None when absent); ``msccs(avps)``, ``subscriptions(avps)``
    and ``used(avps)`` the MSCCs, the Subscription-Ids and the top-level Used-Service-Units.
    ``present`` holds the codes of the single-instance AVPs present; ``deviations`` what the
    lenient profile tolerated; ``services``, when set, the MSCCs' reader (see parse_plan).
    """

    __slots__ = (
        "deviations",
        "fields",
        "mscc_at",
        "msccs",
        "present",
        "services",
        "subscriptions",
        "used",
    )

    def __init__(
        self,
        fields: Callable[[list[Avp | None]], tuple[Avp | None, ...]],
        runs: tuple[list[int], list[int], list[int]],
        present: frozenset[int],
        deviations: tuple[str, ...],
    ) -> None:
        self.fields = fields
        self.msccs, self.subscriptions, self.used = (_picker(run) for run in runs)
        self.mscc_at = runs[0]
        self.present = present
        self.deviations = deviations
        self.services: ServicesReader | None = None
        """Reads the MSCCs of a request of this shape from its frame (see parse_plan), when
        the layout was remembered for a shape and its MSCCs allow it."""


def classify(
    avps: list[Avp], codes: tuple[int, ...], single_instance: frozenset[int], strict: bool
) -> Layout:
    """The layout of ``avps`` for the field ``codes`` (AVP codes, SERVICE_INFORMATION, VSAI;
    at least two); raises the fault of a repeated
    single-instance AVP (5009) or, strict, of an AVP that does not belong in a CCR."""
    once: dict[int, int] = {}
    mscc_at: list[int] = []
    subscription_at: list[int] = []
    used_at: list[int] = []
    deviations: list[str] = []
    accounting_seen = False
    for at, avp in enumerate(avps):
        code = avp.code
        if avp.vendor:
            if code == _SERVICE_INFORMATION and avp.vendor == VENDOR_3GPP:
                if SERVICE_INFORMATION in once:
                    raise duplicate_avp(avp, "CCR")
                once[SERVICE_INFORMATION] = at
            continue
        if code in single_instance:
            if code in once:
                if strict or code not in _TOLERATED_DUPLICATES:
                    raise duplicate_avp(avp, "CCR")
                deviations.append(f"AVP {code} occurs more than once; the first is used")
                continue
            once[code] = at
        elif code == _MULTIPLE_SERVICES_CREDIT_CONTROL:
            mscc_at.append(at)
        elif code == _SUBSCRIPTION_ID:
            subscription_at.append(at)
        elif code == _USED_SERVICE_UNIT:
            used_at.append(at)
        elif code in _ACCOUNTING_AVPS:
            if strict:
                raise AvpNotAllowed("accounting AVPs do not belong in a CCR", failed_avps=(avp,))
            if not accounting_seen:
                accounting_seen = True
                deviations.append("Accounting-Record-* AVPs in a CCR are ignored")
        elif code == _VSAI and VSAI not in once:
            once[VSAI] = at
    absent = len(avps)  # the index of the None the caller appends
    return Layout(
        itemgetter(*[once.get(code, absent) for code in codes]),
        (mscc_at, subscription_at, used_at),
        frozenset([code for code in once if code >= 0]),
        tuple(deviations),
    )


def _picker(indices: list[int]) -> Callable[[list[Avp]], list[Avp]]:
    if not indices:
        return lambda avps: []
    if len(indices) == 1:
        only = indices[0]
        return lambda avps: [avps[only]]
    get = itemgetter(*indices)
    return lambda avps: list(get(avps))


class LayoutMemo:
    """The layouts of the request shapes met, by the shape's positions map (see
    :meth:`Message.shared_positions`) and profile. At most ``entries_max``, then afresh."""

    __slots__ = ("_entries", "entries_max")

    def __init__(self, entries_max: int = 1024) -> None:
        self.entries_max = entries_max
        # By id(): a positions map is a dict (unhashable); the entry keeps it alive, and the
        # identity check on the way out makes a reused id harmless.
        self._entries: dict[tuple[int, bool], tuple[Mapping[Any, Any], Layout]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def layout(
        self,
        message: Message,
        codes: tuple[int, ...],
        single_instance: frozenset[int],
        strict: bool,
    ) -> Layout:
        positions = message.shared_positions()
        if positions is None:
            return classify(message.avps, codes, single_instance, strict)
        key = (id(positions), strict)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is positions:
            return entry[1]
        layout = classify(message.avps, codes, single_instance, strict)
        frame = message.received_frame()
        if frame is not None and layout.mscc_at:
            layout.services = services_plan(frame, layout.mscc_at)
        if len(self._entries) >= self.entries_max:
            self._entries.clear()
        self._entries[key] = (positions, layout)
        return layout
