"""Reads on groups and the people in them."""

from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.contrib.postgres.fields import ArrayField
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    Exists,
    F,
    Func,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from analytics.models import Event, EventType
from campaigns.models import Order
from contacts.models import ChannelCode, Contact, Follow, Staff, TagGroup
from groups.models import Group, GroupMembership, Handover


def wecom_world() -> dict:
    """Our staff, contacts, WeCom tags and open groups in the shape the fake WeCom loads.

    The offline demo starts the fake WeCom with this, so a sync or a callback there agrees
    with the demo data instead of contradicting it.
    """
    tag_ids = {}
    tag_groups = []
    for group in TagGroup.objects.filter(wecom_group_id__isnull=False).prefetch_related("tags"):
        tags = [t for t in group.tags.all() if t.wecom_tag_id]
        tag_ids.update({t.pk: t.wecom_tag_id for t in tags})
        tag_groups.append(
            {
                "group_id": group.wecom_group_id,
                "group_name": group.name,
                "order": group.order,
                "tags": [{"id": t.wecom_tag_id, "name": t.name, "order": t.order} for t in tags],
            }
        )
    active_follows = Follow.objects.filter(
        deleted_by_staff_at__isnull=True, deleted_by_contact_at__isnull=True
    ).select_related("staff")
    contacts = (
        Contact.objects.filter(follows__in=active_follows)
        .distinct()
        .prefetch_related(
            Prefetch("follows", queryset=active_follows, to_attr="active_follows"), "contact_tags"
        )
    )
    memberships = GroupMembership.objects.filter(left_at__isnull=True).select_related(
        "contact", "staff"
    )
    groups = (
        Group.objects.filter(dismissed_at__isnull=True)
        .select_related("owner")
        .prefetch_related(
            "admins", Prefetch("memberships", queryset=memberships, to_attr="open_stays")
        )
    )
    return {
        "staff": [
            {"userid": s.userid, "name": s.name, "status": 1}
            for s in Staff.objects.filter(status=Staff.Status.ACTIVE)
        ],
        "contacts": [
            {
                "external_userid": c.external_userid,
                "name": c.name,
                "gender": c.gender,
                "avatar": c.avatar,
                "unionid": c.unionid,
                "follow_users": [
                    {
                        "userid": f.staff.userid,
                        "remark": f.remark,
                        "description": f.description,
                        "createtime": int(f.added_at.timestamp()),
                        "tags": [
                            tag_ids[ct.tag_id]
                            for ct in c.contact_tags.all()
                            if ct.tag_id in tag_ids
                        ],
                        "state": f.state,
                        "add_way": f.add_way,
                    }
                    for f in c.active_follows
                ],
            }
            for c in contacts
        ],
        "tag_groups": tag_groups,
        "groups": [
            {
                "chat_id": g.chat_id,
                "name": g.name,
                "owner": g.owner.userid,
                "notice": g.notice,
                "create_time": int(g.wecom_created_at.timestamp()) if g.wecom_created_at else 0,
                "admin_list": [a.userid for a in g.admins.all()],
                "members": [
                    {
                        "userid": m.contact.external_userid if m.contact_id else m.staff.userid,
                        "type": 2 if m.contact_id else 1,
                        "join_time": int(m.joined_at.timestamp()),
                        "join_scene": m.join_scene if m.join_scene is not None else 0,
                        "name": (m.contact or m.staff).name,
                    }
                    for m in g.open_stays
                ],
            }
            for g in groups
        ],
    }


# --- who sees what ------------------------------------------------------------------------

# Windows are whole Asia/Shanghai calendar days ending today, today included.
ACTIVITY_DAYS = 7
REVENUE_DAYS = 30
STAGE_DAYS = 7


def day_start(day: date) -> datetime:
    """00:00 of a calendar day in the product's time zone (Asia/Shanghai)."""
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_default_timezone())


def last_days(days: int, *, now: datetime | None = None) -> tuple[date, date, datetime, datetime]:
    """The last `days` Shanghai calendar days, today included: (first, last, start, end)."""
    today = timezone.localdate(now or timezone.now(), timezone.get_default_timezone())
    first = today - timedelta(days=days - 1)
    return first, today, day_start(first), day_start(today + timedelta(days=1))


def user_sees_all(user) -> bool:
    """Managers and analysts see every group and code; operators only their own."""
    return user.is_manager or user.is_read_only


def user_staff(user) -> Staff | None:
    """The login's WeCom identity; None when it has none."""
    return getattr(user, "staff", None)


def groups_visible_to(user) -> QuerySet[Group]:
    """Every group for managers and analysts; for an operator those they own or administer."""
    groups = Group.objects.all()
    if user_sees_all(user):
        return groups
    staff = user_staff(user)
    if staff is None:
        return groups.none()
    administered = Group.admins.through.objects.filter(group=OuterRef("pk"), staff=staff)
    return groups.filter(Q(owner=staff) | Exists(administered))


def channel_codes_visible_to(user) -> QuerySet[ChannelCode]:
    """Every code for managers and analysts; for an operator the codes that include them."""
    codes = ChannelCode.objects.all()
    if user_sees_all(user):
        return codes
    staff = user_staff(user)
    if staff is None:
        return codes.none()
    theirs = ChannelCode.staff.through.objects.filter(channelcode=OuterRef("pk"), staff=staff)
    return codes.filter(Exists(theirs))


# --- the group list -------------------------------------------------------------------------


def _per_group(rows: QuerySet, aggregate) -> Coalesce:
    """A correlated subquery giving one number per group (0 when it has no rows)."""
    value = rows.order_by().values("group").annotate(n=aggregate).values("n")
    return Coalesce(Subquery(value[:1]), 0, output_field=IntegerField())


def customers_now() -> Coalesce:
    """Customers in the group now (open stays; staff are not counted)."""
    stays = GroupMembership.objects.filter(
        group=OuterRef("pk"), left_at__isnull=True, contact__isnull=False
    )
    # Counting the contact (never null here), not the row: the open-stay index holds it, so
    # a thousand groups are counted from the index alone.
    return _per_group(stays, Count("contact"))


def staff_now() -> Coalesce:
    stays = GroupMembership.objects.filter(
        group=OuterRef("pk"), left_at__isnull=True, staff__isnull=False
    )
    return _per_group(stays, Count("staff"))


def _messages_between(since: datetime, until: datetime) -> QuerySet[Event]:
    # Group and time first: the event_group_time index answers this per group.
    return Event.objects.filter(
        group=OuterRef("pk"), occurred_at__gte=since, occurred_at__lt=until, type=EventType.MESSAGE
    )


MESSAGES = Coalesce("amount", 1, output_field=IntegerField())  # a MESSAGE row's message count

GROUP_SORTS = {
    "-members": ("-member_count", "-pk"),
    "members": ("member_count", "pk"),
    "name": ("name", "pk"),
    "-name": ("-name", "-pk"),
    "-created": ("-created", "-pk"),
    "created": ("created", "pk"),
}
# Activity sorts: (figures compared in order, newest/highest first?). Figures: 0 speakers,
# 1 messages.
ACTIVITY_SORTS = {
    "-speakers": ((0, 1), True),
    "speakers": ((0, 1), False),
    "-messages": ((1, 0), True),
    "messages": ((1, 0), False),
}
SORTS = [*GROUP_SORTS, *ACTIVITY_SORTS]
DISMISSED_CHOICES = ("no", "yes", "all")
BIGINTS = ArrayField(BigIntegerField())


class _PerSpeakerTotals(Subquery):
    """[speakers, messages] over a subquery of one row per speaker (speaker, messages)."""

    template = (
        "(SELECT ARRAY[COUNT(per_speaker.speaker), COALESCE(SUM(per_speaker.messages), 0)]"
        "::bigint[] FROM (%(subquery)s) per_speaker)"
    )
    output_field = BIGINTS


def _activity(messages: QuerySet[Event]) -> Subquery:
    """A group's [distinct speakers, messages] as one array: its events are read once.

    Summed per speaker first and then counted: a hash per group is cheaper than the sort
    COUNT(DISTINCT) needs, about a quarter less over the last 7 days at 10M events.
    """
    per_speaker = (
        messages.order_by()
        .values(speaker=F("contact"))
        .annotate(messages=Sum(MESSAGES))
        .values("speaker", "messages")
    )
    return _PerSpeakerTotals(per_speaker)


class _ArrayItem(Func):
    """array[index] of a bigint array (1-based; NULL when index is NULL)."""

    output_field = BigIntegerField()

    def as_sql(self, compiler, connection, **extra_context):
        array, index = (compiler.compile(e) for e in self.get_source_expressions())
        return f"(({array[0]})::bigint[])[{index[0]}]", (*array[1], *index[1])


def _known_activity(kept: list[tuple[int, tuple[int, int]]]) -> Func:
    """activity_7d from figures read already, (group id, (speakers, messages)) each, so a
    page of the groups does not read their events a second time."""
    position = Func(
        Value([pk for pk, _ in kept], output_field=BIGINTS), F("pk"), function="array_position"
    )
    speakers = Value([figures[0] for _, figures in kept], output_field=BIGINTS)
    messages = Value([figures[1] for _, figures in kept], output_field=BIGINTS)
    return Func(
        _ArrayItem(speakers, position),
        _ArrayItem(messages, position),
        template="ARRAY[%(expressions)s]",
        output_field=BIGINTS,
    )


def _with_figures(groups: QuerySet[Group], activity: Subquery | Func) -> QuerySet[Group]:
    return groups.select_related("owner").annotate(
        member_count=customers_now(),
        # [distinct speakers, messages] in the last 7 days ([0, 0] when nobody spoke).
        activity_7d=activity,
        created=Coalesce("wecom_created_at", "created_at"),
    )


def group_list(
    *,
    user,
    q: str = "",
    type: str = "",
    model: str = "",
    stage: str = "",
    owner: Staff | int | None = None,
    members_min: int | None = None,
    members_max: int | None = None,
    speakers_min: int | None = None,
    messages_min: int | None = None,
    dismissed: str = "no",
    sort: str = "-members",
    now: datetime | None = None,
) -> QuerySet[Group]:
    """The groups a user may see, filtered and sorted, each with its size and activity.

    Size is customers in the group now (`member_count`); activity is the last 7 days'
    distinct speakers and messages from the event log (`activity_7d`, read it with
    activity_speakers / activity_messages). Each is a per-group subquery of one query, so a
    page costs one round trip however many groups it shows, and PostgreSQL works the figures
    out only for the page's rows. Sorting or filtering by activity needs every group's
    figures: they are read once, in one query, and the result is a list of ids in order.
    """
    _, _, since, until = last_days(ACTIVITY_DAYS, now=now)
    groups = groups_visible_to(user)
    if q:
        groups = groups.filter(Q(name__icontains=q) | Q(chat_id=q))
    if type:
        groups = groups.filter(type=type)
    if model:
        groups = groups.filter(model=model)
    if stage:
        groups = groups.filter(stage=stage)
    if owner:
        groups = groups.filter(owner=owner)
    if dismissed == "no":
        groups = groups.filter(dismissed_at__isnull=True)
    elif dismissed == "yes":
        groups = groups.filter(dismissed_at__isnull=False)
    groups = _with_figures(groups, _activity(_messages_between(since, until)))
    if members_min is not None:
        groups = groups.filter(member_count__gte=members_min)
    if members_max is not None:
        groups = groups.filter(member_count__lte=members_max)
    if not (speakers_min or messages_min or sort in ACTIVITY_SORTS):
        return groups.order_by(*GROUP_SORTS.get(sort, GROUP_SORTS["-members"]))

    # Filtering in SQL would read each group's events once per use (WHERE, ORDER BY, the
    # count, the page); reading them once here (an index-only scan of event_group_time_cover)
    # and handing the figures and the order back as arrays reads them exactly once.
    kept = []
    for pk, activity in groups.order_by().values_list("pk", "activity_7d"):
        figures = tuple(activity or (0, 0))
        if figures[0] >= (speakers_min or 0) and figures[1] >= (messages_min or 0):
            kept.append((pk, figures))
    if sort in ACTIVITY_SORTS:
        order, descending = ACTIVITY_SORTS[sort]
        kept.sort(key=lambda row: (*(row[1][i] for i in order), row[0]), reverse=descending)
    ids = [pk for pk, _ in kept]
    chosen = _with_figures(Group.objects.filter(pk__in=ids), _known_activity(kept))
    if sort not in ACTIVITY_SORTS:
        return chosen.order_by(*GROUP_SORTS.get(sort, GROUP_SORTS["-members"]))
    return chosen.order_by(
        Func(Value(ids, output_field=BIGINTS), F("pk"), function="array_position")
    )


def activity_speakers(group: Group) -> int:
    return (group.activity_7d or (0, 0))[0]


def activity_messages(group: Group) -> int:
    return (group.activity_7d or (0, 0))[1]


def _open_customer_stays(groups: QuerySet[Group]) -> QuerySet[GroupMembership]:
    return GroupMembership.objects.filter(
        group__in=groups.order_by().values("pk"), left_at__isnull=True, contact__isnull=False
    )


def group_list_summary(groups: QuerySet[Group]) -> dict:
    """People across these groups, each counted once, and how many sit in two or more."""
    # One pass: stays per person, then people, places and people with two or more.
    totals = (
        _open_customer_stays(groups)
        .values("contact")
        .annotate(n=Count("group"))
        .order_by()
        .aggregate(
            people=Count("contact"),
            stays=Coalesce(Sum("n"), 0),
            in_several=Count("contact", filter=Q(n__gte=2)),
        )
    )
    return {
        "people": totals["people"],
        "stays": totals["stays"],
        "in_several": totals["in_several"],
    }


def contacts_in_several_groups(*, user, groups: QuerySet[Group] | None = None) -> QuerySet:
    """Customers with open stays in two or more of the groups (群成员去重), most groups first.

    Rows of contact_id and group_count; `overlap_rows` adds names and groups to a page of
    them (grouping by contact alone is far cheaper than carrying names and group lists
    through the aggregation of every stay).
    """
    if groups is None:
        groups = groups_visible_to(user)
    return (
        _open_customer_stays(groups)
        .values("contact_id")
        .annotate(group_count=Count("group"))
        .filter(group_count__gte=2)
        .order_by("-group_count", "contact_id")
    )


def overlap_rows(rows, *, user, groups: QuerySet[Group] | None = None) -> list[dict]:
    """A page of contacts_in_several_groups with each contact's name and groups (by name)."""
    if groups is None:
        groups = groups_visible_to(user)
    rows = [dict(row) for row in rows]
    ids = [row["contact_id"] for row in rows]
    stays = (
        _open_customer_stays(groups)
        .filter(contact_id__in=ids)
        .select_related("contact", "group")
        .order_by("group__name", "group_id")
    )
    found: dict[int, list[GroupMembership]] = {}
    for stay in stays:
        found.setdefault(stay.contact_id, []).append(stay)
    for row in rows:
        stays_of = found.get(row["contact_id"], [])
        contact = stays_of[0].contact if stays_of else None
        row["name"] = contact.name if contact else ""
        row["external_userid"] = contact.external_userid if contact else ""
        row["groups"] = [(s.group_id, s.group.name or s.group.chat_id) for s in stays_of]
    return rows


# --- one group ------------------------------------------------------------------------------


def group_detail(*, user, pk: int) -> Group:
    """One group the user may see, with owner, admins and head counts; Group.DoesNotExist else."""
    return (
        groups_visible_to(user)
        .select_related("owner")
        .prefetch_related("admins")
        .annotate(member_count=customers_now(), staff_count=staff_now())
        .get(pk=pk)
    )


ROLE_RANK = Case(
    When(role=GroupMembership.Role.OWNER, then=Value(0)),
    When(role=GroupMembership.Role.ADMIN, then=Value(1)),
    When(role=GroupMembership.Role.KOC, then=Value(2)),
    default=Value(3),
    output_field=IntegerField(),
)


def group_members(*, group: Group) -> QuerySet[GroupMembership]:
    """Who is in the group now: owner, admins, KOC, then members by join time."""
    return (
        group.memberships.filter(left_at__isnull=True)
        .select_related("contact", "staff", "channel")
        .annotate(role_rank=ROLE_RANK)
        .order_by("role_rank", "joined_at", "pk")
    )


def group_history(*, group: Group) -> QuerySet[GroupMembership]:
    """Every stay there ever was in the group, newest first; a closed stay is a leave."""
    return group.memberships.select_related("contact", "staff", "channel").order_by(
        "-joined_at", "-pk"
    )


def group_admin_count(*, group: Group, exclude: GroupMembership | None = None) -> int:
    stays = group.memberships.filter(left_at__isnull=True, role=GroupMembership.Role.ADMIN)
    if exclude is not None:
        stays = stays.exclude(pk=exclude.pk)
    return stays.count()


# --- a group's stage and its headline numbers -----------------------------------------------
# Plain versions of PRODUCT.md's metrics for the group page; analytics/ will own the exact
# metric functions. None stands for "undefined" (a zero denominator), never 0.


def _ratio(numerator: int | float, denominator: int | float) -> float | None:
    return numerator / denominator if denominator else None


def _fen_per(fen: int, people: int) -> int | None:
    """Money stays in whole fen: a per-person amount rounds half up to the nearest fen."""
    if not people:
        return None
    return int((Decimal(fen) / people).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _mean(values: list[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None


def _customer_stays(group: Group) -> QuerySet[GroupMembership]:
    return GroupMembership.objects.filter(group=group, contact__isnull=False)


def _present_at(at: datetime) -> Q:
    return Q(joined_at__lte=at) & (Q(left_at__isnull=True) | Q(left_at__gt=at))


def _members_start_joins_leaves(group: Group, start: datetime, end: datetime) -> dict:
    # People, not stays: someone who left and came back counts once.
    return _customer_stays(group).aggregate(
        at_start=Count("contact", distinct=True, filter=_present_at(start)),
        joins=Count("contact", distinct=True, filter=Q(joined_at__gte=start, joined_at__lt=end)),
        leaves=Count("contact", distinct=True, filter=Q(left_at__gte=start, left_at__lt=end)),
    )


def founding_numbers(*, group: Group, now: datetime | None = None) -> dict:
    """初建期: joins and leaves in the last 7 days and the leave rate."""
    first, last, start, end = last_days(STAGE_DAYS, now=now)
    counts = _members_start_joins_leaves(group, start, end)
    return {
        "first_day": first,
        "last_day": last,
        "members_at_start": counts["at_start"],
        "joins": counts["joins"],
        "leaves": counts["leaves"],
        "leave_rate": _ratio(counts["leaves"], counts["at_start"] + counts["joins"]),
    }


def activation_numbers(*, group: Group, now: datetime | None = None) -> dict:
    """激活期: distinct speakers per day, interaction rate and messages per member, 7 days."""
    first, last, start, end = last_days(STAGE_DAYS, now=now)
    days = [first + timedelta(days=i) for i in range(STAGE_DAYS)]
    ends = {day: day_start(day + timedelta(days=1)) for day in days}
    members = _customer_stays(group).aggregate(
        **{
            f"d{i}": Count("contact", distinct=True, filter=_present_at(ends[day]))
            for i, day in enumerate(days)
        }
    )
    spoken = {
        row["day"]: row
        for row in Event.objects.filter(
            group=group, occurred_at__gte=start, occurred_at__lt=end, type=EventType.MESSAGE
        )
        .annotate(day=TruncDate("occurred_at", tzinfo=timezone.get_default_timezone()))
        .values("day")
        .annotate(speakers=Count("contact", distinct=True), messages=Sum(MESSAGES))
        .order_by()
    }
    daily = []
    for i, day in enumerate(days):
        speakers = spoken.get(day, {}).get("speakers", 0)
        messages = spoken.get(day, {}).get("messages", 0)
        at_end = members[f"d{i}"]
        daily.append(
            {
                "day": day,
                "speakers": speakers,
                "messages": messages,
                "members": at_end,
                "interaction_rate": _ratio(speakers, at_end),
                "messages_per_member": _ratio(messages, at_end),
            }
        )
    return {
        "first_day": first,
        "last_day": last,
        "speakers_per_day": _mean([d["speakers"] for d in daily]),
        "interaction_rate": _mean([d["interaction_rate"] for d in daily]),
        "messages_per_member": _mean([d["messages_per_member"] for d in daily]),
        "messages": sum(d["messages"] for d in daily),
        "daily": daily,
    }


def retention_numbers(*, group: Group, now: datetime | None = None) -> dict:
    """留存期: of the members there at the start of the last 7 days, the share still in now."""
    first, last, start, _ = last_days(STAGE_DAYS, now=now)
    stays = _customer_stays(group)
    at_start = stays.filter(_present_at(start)).values("contact")
    counts = stays.aggregate(
        at_start=Count("contact", distinct=True, filter=_present_at(start)),
        still_in=Count(
            "contact", distinct=True, filter=Q(left_at__isnull=True, contact__in=at_start)
        ),
    )
    return {
        "first_day": first,
        "last_day": last,
        "members_at_start": counts["at_start"],
        "still_in": counts["still_in"],
        "retention": _ratio(counts["still_in"], counts["at_start"]),
    }


def monetization_numbers(*, group: Group, now: datetime | None = None) -> dict:
    """变现期: paid orders the group brought in the last 30 days, revenue, AOV, conversion."""
    first, last, start, end = last_days(REVENUE_DAYS, now=now)
    orders = Order.objects.filter(
        group=group, status=Order.Status.PAID, ordered_at__gte=start, ordered_at__lt=end
    ).aggregate(
        orders=Count("pk"), revenue_fen=Sum("amount_fen"), buyers=Count("contact", distinct=True)
    )
    counts = _members_start_joins_leaves(group, start, end)
    revenue = orders["revenue_fen"] or 0
    return {
        "first_day": first,
        "last_day": last,
        "orders": orders["orders"],
        "revenue_fen": revenue,
        "buyers": orders["buyers"],
        "aov_fen": _fen_per(revenue, orders["buyers"]),
        "conversion": _ratio(orders["buyers"], counts["at_start"] + counts["joins"]),
    }


def propagation_numbers(*, group: Group, now: datetime | None = None) -> dict:
    """传播期: referrals by the group's members in the last 30 days and the referral rate."""
    first, last, start, end = last_days(REVENUE_DAYS, now=now)
    members = (
        _customer_stays(group)
        .filter(Q(joined_at__lt=end) & (Q(left_at__isnull=True) | Q(left_at__gte=start)))
        .values("contact")
    )
    referrals = Event.objects.filter(
        contact__in=members, occurred_at__gte=start, occurred_at__lt=end, type=EventType.REFERRAL
    ).aggregate(referrals=Count("pk"), referrers=Count("contact", distinct=True))
    # Active in P: spoke in the group or ordered through it.
    speakers = set(
        Event.objects.filter(
            group=group, occurred_at__gte=start, occurred_at__lt=end, type=EventType.MESSAGE
        )
        .exclude(contact__isnull=True)
        .values_list("contact_id", flat=True)
        .distinct()
    )
    buyers = set(
        Order.objects.filter(
            group=group, status=Order.Status.PAID, ordered_at__gte=start, ordered_at__lt=end
        ).values_list("contact_id", flat=True)
    )
    active = len(speakers | buyers)
    return {
        "first_day": first,
        "last_day": last,
        "referrals": referrals["referrals"],
        "referrers": referrals["referrers"],
        "active_members": active,
        "referral_rate": _ratio(referrals["referrers"], active),
    }


STAGE_NUMBERS = {
    Group.Stage.FOUNDING: founding_numbers,
    Group.Stage.ACTIVATION: activation_numbers,
    Group.Stage.RETENTION: retention_numbers,
    Group.Stage.MONETIZATION: monetization_numbers,
    Group.Stage.PROPAGATION: propagation_numbers,
}


def stage_numbers(*, group: Group, now: datetime | None = None) -> dict:
    """The headline numbers the group's stage puts first (PRODUCT.md "Stage focus")."""
    return STAGE_NUMBERS[group.stage](group=group, now=now)


# --- channel codes --------------------------------------------------------------------------

CODE_PERIODS = {"7": 7, "30": 30, "90": 90, "all": None}
ARRIVAL_EVENT = {
    ChannelCode.Kind.STAFF: EventType.CONTACT_ADDED,
    ChannelCode.Kind.GROUP: EventType.GROUP_JOINED,
}


def channel_code_list(
    *, user, kind: str = "", include_retired: bool = False
) -> QuerySet[ChannelCode]:
    codes = channel_codes_visible_to(user).prefetch_related("staff", "tags", "groups")
    if kind:
        codes = codes.filter(kind=kind)
    if not include_retired:
        codes = codes.filter(is_active=True)
    return codes.order_by("-created_at", "-pk")


def channel_code_figures(
    *, codes: list[ChannelCode], days: int | None = 30, now: datetime | None = None
) -> dict[int, dict]:
    """Exposures, arrivals and join rate per code over the last `days` (None: all time).

    One grouped query over the event log for the codes given (a page of them). Arrivals are
    CONTACT_ADDED events for a staff code and GROUP_JOINED events for a group code.
    """
    figures = {c.pk: {"exposures": 0, "arrivals": 0, "join_rate": None} for c in codes}
    if not codes:
        return figures
    events = Event.objects.filter(
        channel_id__in=list(figures),
        type__in=[EventType.CHANNEL_EXPOSURE, EventType.CONTACT_ADDED, EventType.GROUP_JOINED],
    )
    if days is not None:
        _, _, since, until = last_days(days, now=now)
        events = events.filter(occurred_at__gte=since, occurred_at__lt=until)
    totals = {
        (row["channel_id"], row["type"]): row
        for row in events.values("channel_id", "type")
        # COUNT(*), not of the id: the id is not in event_channel_time, so this one query
        # would read every event's row instead of the index alone.
        .annotate(events=Count("*"), amount=Sum(MESSAGES))
        .order_by()
    }
    for code in codes:
        arrival = ARRIVAL_EVENT[code.kind]
        exposures = totals.get((code.pk, EventType.CHANNEL_EXPOSURE), {}).get("amount", 0)
        arrivals = totals.get((code.pk, arrival), {}).get("events", 0)
        figures[code.pk] = {
            "exposures": exposures,
            "arrivals": arrivals,
            "join_rate": _ratio(arrivals, exposures),
        }
    return figures


# --- leaver transfer ------------------------------------------------------------------------


def handover_list() -> QuerySet[Handover]:
    return Handover.objects.select_related(
        "handover_staff", "takeover_staff", "group_takeover_staff", "created_by"
    ).order_by("-created_at", "-pk")


def staff_handover_load(*, staff: Staff) -> dict:
    """What a leaver would hand over: active customers and groups they own."""
    return {
        "customers": Follow.objects.filter(
            staff=staff, deleted_by_staff_at__isnull=True, deleted_by_contact_at__isnull=True
        ).count(),
        "groups": Group.objects.filter(owner=staff, dismissed_at__isnull=True).count(),
    }


def handover_counts(handover: Handover) -> dict:
    """How many customers and groups are waiting, done, refused or failed."""
    counts = {
        "customers": {"waiting": 0, "done": 0, "refused": 0, "failed": 0},
        "groups": {"done": 0, "failed": 0},
    }
    for entry in handover.customers.values():
        counts["customers"][entry["status"]] += 1
    for entry in handover.groups.values():
        counts["groups"][entry["status"]] += 1
    return counts


def handover_customer_rows(handover: Handover, *, status: str = "") -> list[dict]:
    """Per-customer results, waiting and failed first, then by name."""
    order = {"waiting": 0, "failed": 1, "refused": 2, "done": 3}
    rows = [
        {"external_userid": external_userid, **entry}
        for external_userid, entry in handover.customers.items()
        if not status or entry["status"] == status
    ]
    rows.sort(key=lambda r: (order[r["status"]], r.get("name") or "", r["external_userid"]))
    return rows
