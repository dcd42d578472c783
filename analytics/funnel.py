"""The lifecycle funnel: exposure → join → speak → order → repurchase → refer, for a period.

Same conventions as analytics.metrics (Shanghai days, customers only, a person counted once
across the slice's groups, orders net of refunds and belonging to a group slice when the
buyer was a member when ordering). One query for the whole funnel.

The steps, for a slice of groups and a period P:
- exposures: CHANNEL_EXPOSURE amounts in P (all channel codes for every group; for a slice,
  the codes that lead into one of its groups);
- joins: people who joined one of the groups in P;
- speakers: members who spoke in one of the groups in P;
- buyers: members who ordered in P (conversion's numerator);
- repeat buyers: of those, people with ≥ 2 orders in P (repurchase rate's numerator);
- referrers: active members (spoke or ordered) who brought ≥ 1 new contact in P (referral
  rate's numerator).
Each step is a count of its own, so a step may exceed the one before it (people join without
a code, or speak without having joined in P); the step ratio says so rather than hiding it.

Over every group, speakers come from ContactActivity's spoken days (analytics.activity)
rather than a month of messages, plus the raw messages the last refresh may not have read
(ids from rollups.OVERLAP_IDS below its watermark on; with no watermark, every message of P),
so the count is the same whether or not the refresh has run.
"""

from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

from analytics.metrics import (
    _MEMBERSHIPS,
    EVENTS,
    Groups,
    Period,
    Ratio,
    _exposed_sql,
    _group_orders_sql,
    _one,
)
from analytics.models import ContactActivity, EventType, RollupWatermark
from analytics.rollups import OVERLAP_IDS, WATERMARK

STEPS = (
    ("exposures", _("Exposure")),
    ("joins", _("Join")),
    ("speakers", _("Speak")),
    ("buyers", _("Order")),
    ("repeat_buyers", _("Repurchase")),
    ("referrers", _("Refer")),
)


@dataclass(frozen=True)
class FunnelStep:
    key: str
    label: str
    count: int
    from_previous: Ratio | None  # None for the first step
    from_first: Ratio | None


def _exposures_filter(groups: Groups) -> str:
    if groups.ids is None:
        return "TRUE"
    return (
        "ev.channel_id IN (SELECT j.channelcode_id FROM groups_group_join_codes j"
        " WHERE j.group_id = ANY(%(group_ids)s))"
    )


def _spoke_sql(groups: Groups) -> tuple[str, dict]:
    """Who spoke in one of the slice's groups in P (members or not)."""
    messages = (
        f"SELECT ev.contact_id FROM {EVENTS} ev"
        f" WHERE ev.type = {int(EventType.MESSAGE)} AND ev.contact_id IS NOT NULL"
        " AND ev.group_id IS NOT NULL AND ev.occurred_at >= %(start)s AND ev.occurred_at < %(end)s"
    )
    if groups.ids is not None:
        in_groups, params = groups.sql("ev.group_id")
        return f"{messages} AND {in_groups}", params
    watermark = RollupWatermark.objects.filter(name=WATERMARK).first()
    unread_from = max((watermark.event_id if watermark else 0) - OVERLAP_IDS, 0)
    return (
        f"SELECT a.contact_id FROM {ContactActivity._meta.db_table} a"
        " WHERE a.spoke && daterange(%(first)s, %(last)s, '[]')"
        f" UNION {messages} AND ev.id > %(unread_from)s",
        {"unread_from": unread_from},
    )


def funnel_counts(groups: Groups, period: Period) -> dict[str, int]:
    """The six step counts, keyed as STEPS."""
    exposed, params = _exposed_sql(groups)
    orders, _ = _group_orders_sql(groups)
    in_groups, _ = groups.sql("m.group_id")
    spoke, spoke_params = _spoke_sql(groups)
    row = _one(
        f"""
        WITH exposed AS ({exposed}),
        joiners AS (
            SELECT DISTINCT m.contact_id FROM {_MEMBERSHIPS} m
            WHERE m.contact_id IS NOT NULL AND {in_groups}
              AND m.joined_at >= %(start)s AND m.joined_at < %(end)s
        ),
        speakers AS (
            SELECT DISTINCT s.contact_id FROM ({spoke}) AS s
            WHERE s.contact_id IN (SELECT contact_id FROM exposed)
        ),
        per_buyer AS (
            SELECT o.contact_id, count(*) AS orders FROM ({orders}) AS o GROUP BY o.contact_id
        ),
        referrers AS (
            SELECT DISTINCT r.contact_id FROM {EVENTS} r
            WHERE r.type = {int(EventType.REFERRAL)}
              AND r.occurred_at >= %(start)s AND r.occurred_at < %(end)s
              AND r.contact_id IN (SELECT contact_id FROM speakers
                                   UNION SELECT contact_id FROM per_buyer)
        )
        SELECT
            (SELECT coalesce(sum(ev.amount), 0) FROM {EVENTS} ev
             WHERE ev.type = {int(EventType.CHANNEL_EXPOSURE)} AND ev.channel_id IS NOT NULL
               AND {_exposures_filter(groups)}
               AND ev.occurred_at >= %(start)s AND ev.occurred_at < %(end)s),
            (SELECT count(*) FROM joiners),
            (SELECT count(*) FROM speakers),
            (SELECT count(*) FROM per_buyer),
            (SELECT count(*) FROM per_buyer WHERE orders >= 2),
            (SELECT count(*) FROM referrers)
        """,
        {
            **params,
            **spoke_params,
            "start": period.start,
            "end": period.end,
            "first": period.first,
            "last": period.last,
        },
    )
    return {key: int(count) for (key, _label), count in zip(STEPS, row, strict=True)}


def funnel(groups: Groups, period: Period) -> list[FunnelStep]:
    """The funnel's steps in order, each with its share of the step before and of the first."""
    counts = funnel_counts(groups, period)
    steps = []
    first = previous = None
    for key, label in STEPS:
        count = counts[key]
        steps.append(
            FunnelStep(
                key=key,
                label=str(label),
                count=count,
                from_previous=None if previous is None else Ratio(count, previous),
                from_first=None if first is None else Ratio(count, first),
            )
        )
        previous = count
        first = count if first is None else first
    return steps
