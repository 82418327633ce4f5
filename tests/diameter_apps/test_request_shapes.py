"""The checker's remembered request shapes give exactly what a full walk gives.

A request matching a remembered shape skips the walk; these properties compare that path with
a checker that remembers nothing (``shapes_max=0``), on generated requests mixing known AVPs of
every checked kind (text, Address, fixed sizes, Grouped), unknown ones, wrong M bits and wrong
sizes, then on the same requests with one byte changed anywhere.
"""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from diameter_apps.codec import KIND_GROUPED, Avp, Message, rule_key
from diameter_apps.codes import VENDOR_3GPP, CommandCode
from diameter_apps.dictionary import default_dictionary
from diameter_apps.errors import DiameterError
from diameter_apps.limits import CodecLimits
from diameter_apps.validation import LAZY_GROUPS, Profile, RequestChecker

_DICTIONARY = default_dictionary()
_LIMITS = CodecLimits(avps_max=64, avp_depth_max=4)
_RULES = _DICTIONARY.avp_rules()


# (code, vendor, payload strategy): known AVPs of each kind the checks read, plus unknown ones.
# Valid payloads are drawn three times in four, so that most requests are accepted (and their
# shape remembered) while every fault still shows up.
def _mostly(
    valid: st.SearchStrategy[bytes], invalid: st.SearchStrategy[bytes]
) -> st.SearchStrategy[bytes]:
    return st.one_of(valid, valid, valid, invalid)


_text = _mostly(
    st.text(st.characters(max_codepoint=127), max_size=12).map(str.encode),
    st.one_of(st.text(max_size=6).map(str.encode), st.binary(max_size=8)),  # non-ASCII, invalid
)
_fixed4 = _mostly(st.binary(min_size=4, max_size=4), st.binary(max_size=9))
_fixed8 = _mostly(st.binary(min_size=8, max_size=8), st.binary(max_size=9))
_address = _mostly(
    st.one_of(
        st.builds(lambda ip: b"\x00\x01" + ip, st.binary(min_size=4, max_size=4)),
        st.builds(lambda ip: b"\x00\x02" + ip, st.binary(min_size=16, max_size=16)),
    ),
    st.binary(max_size=7),
)
_LEAVES = [
    (263, 0, _text, True),  # Session-Id
    (264, 0, _text, True),  # Origin-Host
    (444, 0, _text, True),  # Subscription-Id-Data
    (18, VENDOR_3GPP, _text, True),  # 3GPP-SGSN-MCC-MNC
    (415, 0, _fixed4, True),  # CC-Request-Number
    (416, 0, _fixed4, True),  # CC-Request-Type
    (421, 0, _fixed8, True),  # CC-Total-Octets
    (257, 0, _address, True),  # Host-IP-Address
    (2, VENDOR_3GPP, st.binary(max_size=6), True),  # 3GPP-Charging-Id (OctetString)
    (99_999, 0, st.binary(max_size=6), False),  # unknown
    (99_999, VENDOR_3GPP, st.binary(max_size=6), False),  # unknown, vendor-specific
]
_GROUPS = [(456, 0), (443, 0), (446, 0), (873, VENDOR_3GPP), (99_998, 0)]
_CCR_REQUIRED = [
    Avp.utf8(263, "pgw;1;2"),
    Avp.utf8(264, "pgw.example", m=False),
    Avp.utf8(296, "example"),
    Avp.utf8(283, "ocs.example"),
    Avp.u32(258, 4),
    Avp.utf8(461, "32251@3gpp.org"),
    Avp.i32(416, 2),
    Avp.u32(415, 1),
]


def _leaf(
    code: int, vendor: int, payload: st.SearchStrategy[bytes], m_usual: bool
) -> st.SearchStrategy[Avp]:
    return st.builds(
        lambda data, m: Avp.octets(code, data, vendor=vendor, m=m),
        payload,
        st.sampled_from([m_usual, m_usual, m_usual, not m_usual]),
    )


_avp = st.recursive(
    st.one_of([_leaf(*choice) for choice in _LEAVES]),
    lambda children: st.builds(
        lambda group, kids, m: Avp.grouped(group[0], kids, vendor=group[1], m=m),
        st.sampled_from(_GROUPS),
        st.lists(children, max_size=4),
        st.sampled_from([True, True, True, False]),
    ),
    max_leaves=14,
)
_request = st.one_of(
    st.builds(
        lambda avps: Message.request(99, 4, avps, hop_by_hop=5, end_to_end=6).encode(),
        st.lists(_avp, max_size=10),
    ),
    st.builds(
        lambda avps: Message.request(
            CommandCode.CREDIT_CONTROL, 4, _CCR_REQUIRED + avps, hop_by_hop=5, end_to_end=6
        ).encode(),
        st.lists(_avp, max_size=6),
    ),
)


def _tree(avps: list[Avp] | None, lazy: bool = False) -> object:
    """The AVPs as decoded; the subtree of a LAZY_GROUPS AVP, which a remembered shape leaves
    undecoded, as ``children()`` gives it (a walk decodes every known Grouped AVP)."""
    if avps is None:
        return None
    tree = []
    for a in avps:
        key = rule_key(a.code, a.vendor)
        inside = lazy or key in LAZY_GROUPS
        kids = a._children
        if kids is None and inside and _RULES.get(key, (0, 0, 0))[2] == KIND_GROUPED:
            try:
                kids = a.children()
            except DiameterError as error:
                # A Failed-AVP whose own payload does not decode (refused for its bits before
                # its children were read): both decoders report the same bytes.
                tree.append((a.code, a.flags, a.vendor, a.data, a.depth, type(error).__name__))
                continue
        tree.append((a.code, a.flags, a.vendor, a.data, a.depth, _tree(kids, inside)))
    return tree


def _lazy_left(avps: list[Avp]) -> int:
    """How many AVPs of ``avps`` (at any depth) have children left undecoded."""
    return sum(
        (a._children is None and rule_key(a.code, a.vendor) in LAZY_GROUPS)
        + _lazy_left(a._children or [])
        for a in avps
    )


def _outcome(checker: RequestChecker, wire: bytes) -> object:
    try:
        message, deviations = checker.decode(wire)
    except DiameterError as error:
        return (
            type(error).__name__,
            error.error_message,
            _tree(list(error.failed_avps)),
            None if error.request is None else error.request.hop_by_hop,
        )
    header = (
        message.version,
        message.flags,
        message.command_code,
        message.application_id,
        message.hop_by_hop,
        message.end_to_end,
    )
    return header, _tree(message.avps), deviations


def _lookups(message: Message) -> object:
    """Every top-level lookup the handlers use, for each key present and one absent."""
    keys = [(a.code, a.vendor) for a in message.avps] + [(12_345, 0)]
    return [
        (message.find(*key), message.find_all(*key), list(message.index().get(key, [])))
        for key in keys
    ]


def _checkers(strict: bool) -> tuple[RequestChecker, RequestChecker]:
    profile = Profile.STRICT if strict else Profile.LENIENT
    remembering = RequestChecker(_DICTIONARY, profile, _LIMITS)
    walking = RequestChecker(_DICTIONARY, profile, _LIMITS, shapes_max=0)
    return remembering, walking


@settings(max_examples=150, deadline=None)
@given(wire=_request, strict=st.booleans())
def test_a_remembered_shape_decodes_like_a_full_walk(wire: bytes, strict: bool) -> None:
    remembering, walking = _checkers(strict)
    expected = _outcome(walking, wire)
    assert _outcome(remembering, wire) == expected  # first sight: walked, shape remembered
    assert _outcome(remembering, wire) == expected  # second: from the shape, if accepted


@settings(max_examples=100, deadline=None)
@given(wire=_request, strict=st.booleans(), index_first=st.booleans())
def test_lookups_on_a_remembered_shape_match_a_full_walk(
    wire: bytes, strict: bool, index_first: bool
) -> None:
    remembering, walking = _checkers(strict)
    try:
        walked = walking.decode(wire)[0]
    except DiameterError:
        return
    remembering.decode(wire)
    shaped = remembering.decode(wire)[0]
    if index_first:
        shaped.index()
    for value in range(3):  # lookups before and after the list grows, then is replaced
        assert _lookups(shaped) == _lookups(walked)
        extra = Avp.u32(12_345, value)
        for message in (shaped, walked):
            message.avps.append(extra)
        assert shaped.find_all(12_345) == walked.find_all(12_345)
        assert shaped.find_all(12_345)[-1] is extra
        for message in (shaped, walked):
            message.avps = message.avps[1:]


@settings(max_examples=250, deadline=None)
@given(wire=_request, strict=st.booleans(), data=st.data())
def test_a_changed_byte_is_judged_like_a_full_walk(
    wire: bytes, strict: bool, data: st.DataObject
) -> None:
    remembering, walking = _checkers(strict)
    with contextlib.suppress(DiameterError):
        remembering.decode(wire)  # remembers the shape when the request is accepted
    # Mostly after the header, where payloads (text, Address families, values) lie.
    after_header = st.integers(20, len(wire) - 1) if len(wire) > 20 else st.nothing()
    pos = data.draw(st.one_of(after_header, st.integers(0, 19)), label="pos")
    value = data.draw(st.one_of(st.integers(0x80, 0xFF), st.integers(0, 0x7F)), label="value")
    changed = wire[:pos] + bytes([value]) + wire[pos + 1 :]
    assert _outcome(remembering, changed) == _outcome(walking, changed)
    ids = changed[:12] + b"\x00\x00\x00\x09\x00\x00\x00\x0a" + changed[20:]
    assert _outcome(remembering, ids) == _outcome(walking, ids)


@given(family=st.integers(0, 0xFFFF), strict=st.booleans())
@settings(max_examples=60, deadline=None)
def test_an_address_of_another_family_is_judged_like_a_full_walk(family: int, strict: bool) -> None:
    remembering, walking = _checkers(strict)
    address = Avp.address(257, "192.0.2.1")
    wire = Message.request(99, 4, [Avp.utf8(263, "s;1"), address]).encode()
    remembering.decode(wire)
    at = wire.index(address.data)
    changed = wire[:at] + family.to_bytes(2, "big") + wire[at + 2 :]
    assert _outcome(remembering, changed) == _outcome(walking, changed)


# Walking checkers kept across examples: their verdict caches fill up with every (code, flags,
# vendor) the examples use, where a fresh checker decides each from the dictionary rules.
_SEASONED = {
    strict: RequestChecker(
        _DICTIONARY,
        Profile.STRICT if strict else Profile.LENIENT,
        _LIMITS,
        shapes_max=0,
    )
    for strict in (False, True)
}


@settings(max_examples=150, deadline=None)
@given(wire=_request, strict=st.booleans())
def test_cached_verdicts_judge_like_the_dictionary_rules(wire: bytes, strict: bool) -> None:
    fresh = _checkers(strict)[1]
    assert _outcome(_SEASONED[strict], wire) == _outcome(fresh, wire)


def test_a_remembered_shape_leaves_the_lazy_groups_undecoded() -> None:
    subscription = Avp.grouped(443, [Avp.u32(450, 0), Avp.utf8(444, "491701234567")])
    mscc = Avp.grouped(456, [Avp.u32(432, 10), Avp.grouped(446, [Avp.u64(421, 5)])])
    other = Avp.grouped(873, [Avp.utf8(18, "26201", vendor=VENDOR_3GPP)], vendor=VENDOR_3GPP)
    wire = Message.request(
        CommandCode.CREDIT_CONTROL, 4, [*_CCR_REQUIRED, subscription, mscc, other]
    ).encode()
    remembering, walking = _checkers(False)
    walked = remembering.decode(wire)[0]
    assert _lazy_left(walked.avps) == 0
    shaped = remembering.decode(wire)[0]
    assert _lazy_left(shaped.avps) == 2  # the Subscription-Id and the MSCC, not 873
    assert shaped.avps[-1]._children is not None
    assert _outcome(remembering, wire) == _outcome(walking, wire)


def test_shapes_stay_bounded() -> None:
    checker = RequestChecker(_DICTIONARY, Profile.LENIENT, _LIMITS, shapes_max=3)
    for size in range(1, 10):
        wire = Message.request(99, 4, [Avp.utf8(263, "s" * size)]).encode()
        assert checker.decode(wire)[0].avps[0].data == b"s" * size
        assert checker.shape_count <= 3
    assert checker.decode(wire)[0].avps[0].data == b"s" * 9


def test_a_request_with_non_ascii_text_is_walked_and_not_remembered() -> None:
    checker = RequestChecker(_DICTIONARY, Profile.LENIENT, _LIMITS)
    wire = Message.request(99, 4, [Avp.utf8(263, "pgw;héllo"), Avp.u32(415, 1)]).encode()
    for _ in range(2):
        assert checker.decode(wire)[0].avps[0].as_str() == "pgw;héllo"
        assert checker.shape_count == 0
    ascii_wire = Message.request(99, 4, [Avp.utf8(263, "pgw;hello"), Avp.u32(415, 1)]).encode()
    checker.decode(ascii_wire)
    assert checker.shape_count == 1


def test_a_peer_changing_shape_all_the_time_gets_few_shapes_computed() -> None:
    checker = RequestChecker(_DICTIONARY, Profile.LENIENT, _LIMITS, shapes_max=1_000)
    for size in range(1, 201):  # 200 requests, each of a new shape
        checker.decode(Message.request(99, 4, [Avp.utf8(263, "s" * size)]).encode())
    # 64 credits to start with, one per walked request, 8 per shape: (64 + 200) // 8 at most.
    assert 8 <= checker.shape_count <= (64 + 200) // 8
    again = Message.request(99, 4, [Avp.utf8(263, "t")]).encode()
    assert checker.decode(again)[0].avps[0].data == b"t"


def test_lookups_never_answer_an_avp_of_another_code_after_an_in_place_change() -> None:
    checker = RequestChecker(_DICTIONARY, Profile.LENIENT, _LIMITS)
    wire = Message.request(99, 4, [Avp.utf8(263, "s;1"), Avp.u32(415, 1), Avp.u32(415, 2)]).encode()
    checker.decode(wire)
    for replace_at in (1, 2):
        message = checker.decode(wire)[0]  # from the remembered shape
        other = Avp.u32(416, 9)
        message.avps[replace_at] = other  # in place: same list, same length
        assert all(avp.code == 415 for avp in message.find_all(415))
        found = message.find(415)
        assert found is not None and found.code == 415
        assert message.find(416) in (None, other)
