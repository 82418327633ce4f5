"""The handler's rating memo: a remembered rating is reused only inside the span it holds for
(up to the next tariff boundary), and a new catalog's rater starts afresh."""

from __future__ import annotations

from diameter_apps.codec import decode_message
from diameter_apps.credit_control import CreditControlRequest, parse_ccr
from ocs.charging.usage import RatingMemo, RequestRater
from sim import messages as m
from tariffs.loader import load_texts
from tariffs.rating import Rater
from tests.tariffs.catalogs import GOLDEN, berlin

VOICE = "ext.01.001.8.32275@3gpp.org"
PEER = m.PeerIdentity("gw.test.local", "test.local")
WED_PEAK_END = berlin(2026, 1, 21, 19, 0)  # peak (mon-fri 08:00-19:00) ends here


def voice_ccr(called: str) -> CreditControlRequest:
    spec = m.CcrSpec(
        session_id="memo;1",
        request_type=1,
        request_number=0,
        context=VOICE,
        msisdn="491701234567",
        imsi=None,
        msccs=(m.MsccRequest(rating_group=None, unit=m.Unit.SECONDS, requested=60),),
        called=called,
    )
    raw = m.CcrEncoder(PEER, "ocs.test.local").encode(spec, hop_by_hop=1, end_to_end=1)
    return parse_ccr(decode_message(raw))


def test_memo_gives_the_rating_of_each_instant_across_a_band_change() -> None:
    rater = Rater(load_texts([("gold.yaml", GOLDEN)]))
    ccr = voice_ccr("01511234567")  # de_mobile: 0.60/min at peak, 0.30/min off peak
    memo = RatingMemo()
    (service,) = ccr.services
    instants = [WED_PEAK_END - 120, WED_PEAK_END - 1, WED_PEAK_END, WED_PEAK_END + 60]
    # Asked in an order that reaches back before a remembered instant, too.
    for at in [*instants, WED_PEAK_END - 2, *instants]:
        remembered = RequestRater(rater, ccr, "gold", memo=memo).rate(service, at)
        fresh = RequestRater(rater, ccr, "gold").rate(service, at)
        assert remembered == fresh, at
    peak = RequestRater(rater, ccr, "gold", memo=memo).rate(service, WED_PEAK_END - 1)
    offpeak = RequestRater(rater, ccr, "gold", memo=memo).rate(service, WED_PEAK_END)
    assert (peak.band, offpeak.band) == ("peak", "offpeak")
    assert peak.next_change_at == WED_PEAK_END


def test_memo_starts_afresh_for_another_rater() -> None:
    ccr = voice_ccr("01511234567")
    (service,) = ccr.services
    memo = RatingMemo()
    first = Rater(load_texts([("gold.yaml", GOLDEN)]))
    cheaper = Rater(load_texts([("gold.yaml", GOLDEN.replace("price: 0.60", "price: 0.50"))]))
    at = WED_PEAK_END - 600
    before = RequestRater(first, ccr, "gold", memo=memo).rate(service, at)
    after = RequestRater(cheaper, ccr, "gold", memo=memo).rate(service, at)
    assert before.price != after.price
    assert after == RequestRater(cheaper, ccr, "gold").rate(service, at)
