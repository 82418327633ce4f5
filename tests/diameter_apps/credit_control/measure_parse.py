"""Time parse_ccr on a Gy CCR-U with 2 MSCCs (not a test: speed is reported, never asserted).

    .venv/bin/python -m tests.diameter_apps.credit_control.measure_parse

Prints µs per call for: the base stack's checking decode alone, parse_ccr on an already decoded
message, decode + parse_ccr together, and build_cca for the answer.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable

from diameter_apps.codec import Message
from diameter_apps.codes import CommandCode
from diameter_apps.credit_control import (
    CreditControlAnswer,
    GrantedUnits,
    ServiceAnswer,
    build_cca,
    parse_ccr,
)
from diameter_apps.dictionary import default_dictionary
from diameter_apps.limits import DEFAULT_LIMITS
from diameter_apps.validation import Profile, RequestChecker
from tests.diameter_apps.credit_control.ccr_builders import (
    OUR_HOST,
    OUR_REALM,
    ccr_avps,
    location_tai_ecgi,
    mscc,
    ps_information,
    rsu,
    service_information,
    units,
    usu,
)


def gy_update() -> bytes:
    body = [
        mscc(10, requested=rsu(), used=[usu(*units(total=1_000_000, up=200_000, down=800_000))],
             reason=3),
        mscc(20, requested=rsu(), used=[usu(*units(total=5_000, up=1_000, down=4_000))]),
        service_information(ps_information(location=location_tai_ecgi())),
    ]  # fmt: skip
    message = Message.request(CommandCode.CREDIT_CONTROL, 4, ccr_avps(2, 3, body=body))
    return message.encode()


def per_call_us(statement: Callable[[], object], number: int = 20_000) -> float:
    best = min(timeit.repeat(statement, number=number, repeat=5))
    return float(best) / number * 1e6


def main() -> None:
    data = gy_update()
    checker = RequestChecker(default_dictionary(), Profile.LENIENT, DEFAULT_LIMITS)
    decoded, _ = checker.decode(data)
    ccr = parse_ccr(decoded)
    answer = CreditControlAnswer(
        services=tuple(
            ServiceAnswer(rating_group=s.rating_group, granted=GrantedUnits(total_octets=10**7),
                          validity_time_s=600)
            for s in ccr.services
        )
    )  # fmt: skip
    reference = per_call_us(lambda: sum(range(100)))
    print(f"CCR-U, 2 MSCCs, PS-Information: {len(data)} bytes")
    print(f"reference sum(range(100)) {reference:7.2f} µs (how fast this machine is right now)")
    print(f"checking decode      {per_call_us(lambda: checker.decode(data)):7.2f} µs")
    parse_us = per_call_us(lambda: parse_ccr(decoded))
    print(f"parse_ccr            {parse_us:7.2f} µs = {parse_us / reference:.1f} x reference")
    print(f"decode + parse_ccr   {per_call_us(lambda: parse_ccr(checker.decode(data)[0])):7.2f} µs")
    print(
        "build_cca + encode   "
        f"{per_call_us(lambda: build_cca(ccr, answer, origin_host=OUR_HOST, origin_realm=OUR_REALM).encode()):7.2f} µs"  # noqa: E501
    )


if __name__ == "__main__":
    main()
