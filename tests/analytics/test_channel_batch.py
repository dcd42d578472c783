"""The channel comparison's figures for many channel codes at once (metrics.channel_rates) are
metrics.join_rate and metrics.roi of each code alone.

Hand-made history, Shanghai time, for P = 2026-11-02 and 11-03:

    poster  exposures 100 in P, 40 on 11-04; joins 11-01 (before P), 11-02, 11-03 (two);
            orders 5,000 on 11-02, 2,000 on 11-03 refunded in full, 9,000 on 11-04;
            cost 3,000 over 10-31 … 11-04 (5 days): 1,200 of it in P
    counter joins 11-02 (two), no exposures: join rate undefined;
            order 1,000 on 11-03; cost 800 over 10-20 … 11-01, all before P: ROI undefined
    unused  nothing at all
"""

from datetime import date, datetime
from decimal import Decimal
from itertools import count
from zoneinfo import ZoneInfo

import pytest

from analytics import metrics
from analytics.events import record
from analytics.metrics import Period, Ratio
from analytics.models import EventType
from contacts.models import ChannelCode
from tests.factories import ContactFactory

SH = ZoneInfo("Asia/Shanghai")
P = Period(date(2026, 11, 2), date(2026, 11, 3))


def at(month, day, hour=12) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=SH)


@pytest.fixture
def codes(db) -> dict[str, ChannelCode]:
    codes = {
        name: ChannelCode.objects.create(name=name, state=name, kind=ChannelCode.Kind.GROUP)
        for name in ("poster", "counter", "unused")
    }
    buyer = ContactFactory()
    keys = count()

    def event(type, when, code, **fields):
        record(type=type, occurred_at=when, key=f"k{next(keys)}", channel=codes[code], **fields)

    def order(when, code, fen, no):
        event(EventType.ORDER_PAID, when, code, contact=buyer, amount=fen, payload={"order_no": no})

    def cost(code, fen, first, last):
        event(
            EventType.COST_RECORDED,
            at(10, 1),
            code,
            amount=fen,
            payload={"period_start": first, "period_end": last},
        )

    event(EventType.CHANNEL_EXPOSURE, at(11, 2, 9), "poster", amount=60)
    event(EventType.CHANNEL_EXPOSURE, at(11, 3, 23), "poster", amount=40)
    event(EventType.CHANNEL_EXPOSURE, at(11, 4, 0), "poster", amount=40)
    for when in (at(11, 1, 23), at(11, 2), at(11, 3), at(11, 3, 18)):
        event(EventType.GROUP_JOINED, when, "poster", contact=ContactFactory())
    order(at(11, 2), "poster", 5_000, "O1")
    order(at(11, 3), "poster", 2_000, "O2")
    event(
        EventType.ORDER_REFUNDED,
        at(11, 3, 15),
        "poster",
        contact=buyer,
        amount=2_000,
        payload={"order_no": "O2"},
    )
    order(at(11, 4), "poster", 9_000, "O3")
    cost("poster", 3_000, "2026-10-31", "2026-11-04")

    for _ in range(2):
        event(EventType.GROUP_JOINED, at(11, 2), "counter", contact=ContactFactory())
    order(at(11, 3), "counter", 1_000, "O4")
    cost("counter", 800, "2026-10-20", "2026-11-01")
    return codes


def test_each_channel_gets_the_join_rate_and_roi_it_has_alone(codes):
    ids = [code.pk for code in codes.values()]

    rates = metrics.channel_rates(ids, P)

    assert rates == {pk: (metrics.join_rate(pk, P), metrics.roi(P, channel=pk)) for pk in ids}


def test_the_batched_figures_are_the_hand_worked_ones(codes):
    rates = metrics.channel_rates([code.pk for code in codes.values()], P)

    poster_join, poster_roi = rates[codes["poster"].pk]
    assert poster_join == Ratio(3, 100)
    assert poster_roi == Ratio(5_000, Decimal(1_200))
    counter_join, counter_roi = rates[codes["counter"].pk]
    assert counter_join == Ratio(2, 0) and counter_join.value is None
    assert counter_roi == Ratio(1_000, 0) and counter_roi.value is None
    assert rates[codes["unused"].pk] == (Ratio(0, 0), Ratio(0, 0))


def test_no_channels_give_no_figures(db):
    assert metrics.channel_rates([], P) == {}
