"""Reads on contacts: who sees whom, the filtered contact list, the contact page (客户 360)."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.db.models.lookups import LessThan, LessThanOrEqual
from django.utils import timezone

from analytics.models import Event, EventType
from contacts.filters import ContactFilters, ContactSort, CustomerType
from contacts.lifecycle import kept_orders, order_totals
from contacts.models import Contact, ContactNote, ContactTag, Follow, PointsEntry

# The four customer types (PRODUCT.md, 传播期), applied in this order; anyone left is
# unclassified. Good enough to filter by; the analytics issue will refine them.
# 1. Low-need: at most this many orders ever.
LOW_NEED_MAX_ORDERS = 1
# 2. Loyal: an order in each of the last N calendar months (Shanghai; this month and the N-1
#    before it) and has referred someone who ordered.
LOYAL_MONTHS = 3
# 3. Bargain hunter: a repeat buyer with no referrals whose average order is below this
#    (¥50). Coupon use is not in the event log yet, so only the AOV half of the rule applies.
BARGAIN_AOV_FEN = 5_000
# 4. Need-driven: a repeat buyer with no order in this many days.
NEED_DRIVEN_QUIET_DAYS = 90

# What the contact page shows at most of each list; the timeline pages through everything.
POINTS_ENTRIES_SHOWN = 20
ORDERS_SHOWN = 50
REFERRALS_SHOWN = 50
TIMELINE_PAGE_SIZE = 50

ORDER_EVENT_TYPES = (EventType.ORDER_PAID, EventType.ORDER_REFUNDED)


def _membership_model():
    # Groups sit above contacts (contacts ← groups): reach memberships through the reverse
    # relation instead of importing groups.
    return Contact._meta.get_field("memberships").related_model


def active_follows() -> QuerySet[Follow]:
    """Follow relations neither side has ended."""
    return Follow.objects.filter(
        deleted_by_staff_at__isnull=True, deleted_by_contact_at__isnull=True
    )


def contacts_visible_to(user) -> QuerySet[Contact]:
    """The contacts this login may see: managers and analysts all, operators their own.

    An operator's own contacts are those with an active follow relation by their Staff; an
    operator without a WeCom identity sees none.
    """
    if user is None or not user.is_authenticated or not user.is_active:
        return Contact.objects.none()
    if user.is_manager or user.is_read_only:
        return Contact.objects.all()
    staff = getattr(user, "staff", None)
    if staff is None:
        return Contact.objects.none()
    return Contact.objects.filter(
        Exists(active_follows().filter(contact=OuterRef("pk"), staff=staff))
    )


# --- order facts and customer types --------------------------------------------------------
#
# Orders come from the event log (contacts sit below campaigns): contacts.lifecycle owns the
# rule for which orders count (paid minus refunds by order_no above zero); its correlated
# kept_orders / order_totals serve lists already narrowed by other filters.


@dataclass(frozen=True)
class OrderStats:
    """A contact's kept orders and net spend as SQL expressions over contacts, 0 when none.

    Correlated per contact (the event log's contact index answers it), so they cost little
    once other filters have narrowed the contacts. Built once and reused: building the
    querysets behind them is most of their cost in Python.
    """

    orders: Coalesce
    spend_fen: Coalesce

    @classmethod
    def build(cls) -> "OrderStats":
        totals = order_totals().filter(contact_id=OuterRef("pk"))

        def stat(name: str) -> Coalesce:
            subquery = Subquery(totals.values(name)[:1])
            return Coalesce(subquery, Value(0), output_field=BigIntegerField())

        return cls(orders=stat("orders"), spend_fen=stat("spend_fen"))


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_default_timezone())


def _month_starts(now: datetime, count: int) -> list[datetime]:
    """Starts of this calendar month and the count-1 before it, Shanghai time, newest first."""
    day = timezone.localdate(now, timezone.get_default_timezone()).replace(day=1)
    starts = []
    for _ in range(count):
        starts.append(_day_start(day))
        day = (day - timedelta(days=1)).replace(day=1)
    return starts


def customer_type_thresholds() -> dict[str, int]:
    """The thresholds behind the customer types, for the page that explains them."""
    return {
        "low_need_max_orders": LOW_NEED_MAX_ORDERS,
        "loyal_months": LOYAL_MONTHS,
        "bargain_aov_fen": BARGAIN_AOV_FEN,
        "need_driven_quiet_days": NEED_DRIVEN_QUIET_DAYS,
    }


def customer_type_whens(*, now: datetime, stats: OrderStats | None = None) -> list[When]:
    """The customer types' rules as Case branches. Order matters: each branch is reached only
    when every earlier one failed, so later rules leave out what the earlier ones settled
    (past the first, everyone is a repeat buyer)."""
    stats = stats or OrderStats.build()
    orders_of_contact = kept_orders().filter(contact_id=OuterRef("pk"))
    months = _month_starts(now, LOYAL_MONTHS)
    ordered_every_month = Q()
    for start, end in zip(months, [None, *months[:-1]], strict=True):
        in_month = orders_of_contact.filter(occurred_at__gte=start)
        if end is not None:
            in_month = in_month.filter(occurred_at__lt=end)
        ordered_every_month &= Q(Exists(in_month))
    referrals = Contact.objects.filter(referrer=OuterRef("pk"))
    # Inside `referrals`, OuterRef("pk") in orders_of_contact is the referred contact.
    referred_a_buyer = Exists(referrals.filter(Exists(orders_of_contact)))
    # Average order below the threshold, without dividing: spend < orders × threshold.
    cheap = LessThan(
        stats.spend_fen, ExpressionWrapper(stats.orders * BARGAIN_AOV_FEN, BigIntegerField())
    )
    quiet_since = now - timedelta(days=NEED_DRIVEN_QUIET_DAYS)
    return [
        When(
            Q(LessThanOrEqual(stats.orders, LOW_NEED_MAX_ORDERS)),
            then=Value(CustomerType.LOW_NEED),
        ),
        When(ordered_every_month & Q(referred_a_buyer), then=Value(CustomerType.LOYAL)),
        When(~Q(Exists(referrals)) & Q(cheap), then=Value(CustomerType.BARGAIN)),
        When(
            ~Q(Exists(orders_of_contact.filter(occurred_at__gte=quiet_since))),
            then=Value(CustomerType.NEED_DRIVEN),
        ),
    ]


def customer_type_expression(*, now: datetime, stats: OrderStats | None = None) -> Case:
    """The customer type (CustomerType) of each contact at `now`, as one SQL expression."""
    return Case(
        *customer_type_whens(now=now, stats=stats), default=Value(CustomerType.UNCLASSIFIED)
    )


@dataclass(frozen=True)
class CustomerFacts:
    """What the customer-type rules look at, for one contact."""

    orders: int = 0
    spend_fen: int = 0
    ordered_each_month: bool = False  # each of the last LOYAL_MONTHS calendar months
    ordered_recently: bool = False  # within NEED_DRIVEN_QUIET_DAYS
    referrals: int = 0
    referrals_who_ordered: int = 0

    def customer_type(self) -> CustomerType:
        """The rules of customer_type_whens, in Python, for rows already fetched."""
        if self.orders <= LOW_NEED_MAX_ORDERS:
            return CustomerType.LOW_NEED
        if self.ordered_each_month and self.referrals_who_ordered:
            return CustomerType.LOYAL
        if not self.referrals and self.spend_fen < self.orders * BARGAIN_AOV_FEN:
            return CustomerType.BARGAIN
        if not self.ordered_recently:
            return CustomerType.NEED_DRIVEN
        return CustomerType.UNCLASSIFIED


def customer_facts(contact_ids, *, now: datetime | None = None) -> dict[int, CustomerFacts]:
    """The customer-type facts of a page of contacts (or of a queryset of their ids), in two
    grouped queries.

    The list's customer_type filter is one SQL expression (customer_type_expression); for
    rows already on the page, two plain aggregates and CustomerFacts.customer_type are far
    cheaper to build than that expression, and the tests hold the two to the same answers.
    """
    now = now or timezone.now()
    # A queryset of ids stays a subquery (a whole customer base); anything else a list.
    ids = contact_ids if isinstance(contact_ids, QuerySet) else list(contact_ids)
    months = _month_starts(now, LOYAL_MONTHS)
    in_month = {
        f"month_{n}": Count(
            "id",
            filter=Q(occurred_at__gte=start) & (Q(occurred_at__lt=end) if end else Q()),
        )
        for n, (start, end) in enumerate(zip(months, [None, *months[:-1]], strict=True))
    }
    orders = (
        kept_orders()
        .filter(contact_id__in=ids)
        .order_by()
        .values("contact_id")
        .annotate(
            orders=Count("id"),
            spend_fen=Sum("net_fen"),
            recent=Count(
                "id",
                filter=Q(occurred_at__gte=now - timedelta(days=NEED_DRIVEN_QUIET_DAYS)),
            ),
            **in_month,
        )
    )
    referred = (
        Contact.objects.filter(referrer_id__in=ids)
        .order_by()
        .values("referrer_id")
        .annotate(
            referrals=Count("id"),
            buyers=Count("id", filter=Q(Exists(kept_orders().filter(contact_id=OuterRef("pk"))))),
        )
    )
    referrals = {row["referrer_id"]: (row["referrals"], row["buyers"]) for row in referred}
    facts = {pk: CustomerFacts(referrals=referrals.get(pk, (0, 0))[0]) for pk in ids}
    for row in orders:
        pk = row["contact_id"]
        made, bought = referrals.get(pk, (0, 0))
        facts[pk] = CustomerFacts(
            orders=row["orders"],
            spend_fen=row["spend_fen"] or 0,
            ordered_each_month=all(row[name] for name in in_month),
            ordered_recently=bool(row["recent"]),
            referrals=made,
            referrals_who_ordered=bought,
        )
    return facts


def _buyer_facts_sql(*, now: datetime) -> tuple[str, list]:
    """kept_orders' orders summed per buyer, as customer_facts' order columns:
    (contact_id, orders, spend_fen, recent, month_0 … month_N-1), for every contact at once.

    Same rule as kept_orders (refunds matched by the JSON order_no, no time limit), but an
    order's number is read from the table only when its buyer has any refund (a hashed set
    of refunders): kept_orders reads it for every order, a heap visit each; here everyone
    else's orders come from the index of rare events alone.
    """
    events = Event._meta.db_table
    paid, refunded = int(EventType.ORDER_PAID), int(EventType.ORDER_REFUNDED)
    months = _month_starts(now, LOYAL_MONTHS)
    in_month = []
    params: list = [now - timedelta(days=NEED_DRIVEN_QUIET_DAYS)]
    for n, (start, end) in enumerate(zip(months, [None, *months[:-1]], strict=True)):
        test = "p.occurred_at >= %s" + (" AND p.occurred_at < %s" if end else "")
        in_month.append(f"count(*) FILTER (WHERE {test}) AS month_{n}")
        params += [start, end] if end else [start]
    sql = f"""
        SELECT p.contact_id, count(*) AS orders,
               sum(coalesce(p.amount, 0) - r.refunded) AS spend_fen,
               count(*) FILTER (WHERE p.occurred_at >= %s) AS recent, {", ".join(in_month)}
        FROM {events} p
        CROSS JOIN LATERAL (SELECT CASE
            WHEN p.contact_id IN (SELECT x.contact_id FROM {events} x WHERE x.type = {refunded})
            THEN coalesce((
                SELECT sum(x.amount) FROM {events} x
                WHERE x.type = {refunded} AND x.contact_id = p.contact_id
                  AND x.payload -> 'order_no' = (
                      SELECT o.payload -> 'order_no' FROM {events} o WHERE o.id = p.id)
            ), 0)::bigint
            ELSE 0
        END AS refunded) r
        WHERE p.type = {paid} AND p.contact_id IS NOT NULL
          AND coalesce(p.amount, 0) - r.refunded > 0
        GROUP BY p.contact_id
    """
    return sql, params


def customer_type_counts(contact_ids: QuerySet, *, now: datetime | None = None) -> dict[str, int]:
    """How many of the contacts (a queryset of them or their ids) are of each CustomerType.

    CustomerFacts.customer_type's rules as one grouped SQL query: for a whole customer base,
    building a CustomerFacts per contact costs most of a second. The tests hold this, the
    list filter (customer_type_expression) and CustomerFacts to the same types.
    """
    now = now or timezone.now()
    facts_sql, params = _buyer_facts_sql(now=now)
    try:
        ids_sql, ids_params = contact_ids.values("pk").query.sql_with_params()
    except EmptyResultSet:  # .none(): a login that may see no one
        return dict.fromkeys(CustomerType.values, 0)
    each_month = " AND ".join(f"b.month_{n} > 0" for n in range(LOYAL_MONTHS))
    kinds = CustomerType
    sql = f"""
        WITH buyers AS ({facts_sql}),
        referrers AS (
            SELECT r.referrer_id, count(rb.contact_id) AS buyers
            FROM {Contact._meta.db_table} r
            LEFT JOIN buyers rb ON rb.contact_id = r.id
            WHERE r.referrer_id IS NOT NULL
            GROUP BY r.referrer_id
        )
        SELECT CASE
            WHEN b.orders <= %s THEN %s
            WHEN {each_month} AND f.buyers > 0 THEN %s
            WHEN f.referrer_id IS NULL AND b.spend_fen < b.orders * %s THEN %s  -- no referrals
            WHEN b.recent = 0 THEN %s
            ELSE %s
        END, count(*)
        FROM buyers b
        LEFT JOIN referrers f ON f.referrer_id = b.contact_id
        WHERE b.contact_id IN ({ids_sql})
        GROUP BY 1
    """
    params += [LOW_NEED_MAX_ORDERS, kinds.LOW_NEED, kinds.LOYAL, BARGAIN_AOV_FEN, kinds.BARGAIN]
    params += [kinds.NEED_DRIVEN, kinds.UNCLASSIFIED, *ids_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        counts = dict.fromkeys(kinds.values, 0) | dict(cursor.fetchall())
    # Only buyers were typed: everyone else has no kept order, so is low-need (rule 1).
    counts[kinds.LOW_NEED] += contact_ids.count() - sum(counts.values())
    return counts


def contact_stats(contact_ids, *, now: datetime | None = None) -> dict[int, dict]:
    """Orders, net spend and customer type of a page of contacts (two queries)."""
    return {
        pk: {"order_count": f.orders, "spend_fen": f.spend_fen, "customer_type": f.customer_type()}
        for pk, f in customer_facts(contact_ids, now=now).items()
    }


# --- the contact list ------------------------------------------------------------------------


def _has_tag(**condition) -> Exists:
    return Exists(ContactTag.objects.filter(contact=OuterRef("pk"), **condition))


# Sort keys (ContactSort without the "-") → columns; the id breaks ties so pages are stable.
_SORT_COLUMNS = {
    "last_active": "last_active_at",
    "added": "first_added_at",
    "name": "name",
    "points": "points_balance",
    "orders": "sort_orders",
    "spend": "sort_spend",
}


def _ordering(sort: str) -> list:
    column = _SORT_COLUMNS[sort.lstrip("-")]
    if sort.startswith("-"):
        return [F(column).desc(nulls_last=True), F("pk").desc()]
    return [F(column).asc(nulls_last=True), F("pk").asc()]


def contacts_filtered(
    *, user, filters: ContactFilters, now: datetime | None = None
) -> QuerySet[Contact]:
    """The contacts this login may see that match the filters, in the asked order.

    Tag conditions are EXISTS semi-joins on contacts_contacttag (tag, contact), so a contact
    with many tags is never repeated and the count needs no DISTINCT.
    """
    now = now or timezone.now()
    contacts = contacts_visible_to(user)
    f = filters
    if f.q:
        contacts = contacts.filter(
            Q(name__icontains=f.q)
            | Q(Exists(Follow.objects.filter(contact=OuterRef("pk"), remark__icontains=f.q)))
            | Q(Exists(ContactNote.objects.filter(contact=OuterRef("pk"), text__icontains=f.q)))
        )
    for tag_id in f.tags_all:
        contacts = contacts.filter(_has_tag(tag_id=tag_id))
    if f.tags_any:
        contacts = contacts.filter(_has_tag(tag_id__in=f.tags_any))
    if f.tags_none:
        contacts = contacts.filter(~_has_tag(tag_id__in=f.tags_none))
    for group_id in f.tag_group:
        contacts = contacts.filter(_has_tag(tag__group_id=group_id))
    if f.tier:
        contacts = contacts.filter(tier_id__in=f.tier)
    if f.stage:
        contacts = contacts.filter(stage__in=f.stage)
    if f.staff is not None:
        contacts = contacts.filter(
            Exists(active_follows().filter(contact=OuterRef("pk"), staff_id=f.staff))
        )
    if f.channel is not None:
        contacts = contacts.filter(source_channel_id=f.channel)
    if f.group is not None:
        stays = _membership_model().objects.filter(
            contact=OuterRef("pk"), group_id=f.group, left_at__isnull=True
        )
        contacts = contacts.filter(Exists(stays))
    if f.active_since is not None:
        contacts = contacts.filter(last_active_at__gte=_day_start(f.active_since))
    if f.active_until is not None:
        contacts = contacts.filter(
            last_active_at__lt=_day_start(f.active_until + timedelta(days=1))
        )
    if f.inactive_days is not None:
        cutoff = now - timedelta(days=f.inactive_days)
        # Never active counts as inactive, but only once they have been ours that long.
        joined = Q(first_added_at__lte=cutoff) | Q(
            first_added_at__isnull=True, created_at__lte=cutoff
        )
        contacts = contacts.filter(
            (Q(last_active_at__lt=cutoff) | Q(last_active_at__isnull=True)) & joined
        )
    sort_key = f.sort.lstrip("-")
    if f.needs_order_stats or f.customer_type or sort_key in ("orders", "spend"):
        stats = OrderStats.build()
        contacts = contacts.alias(sort_orders=stats.orders, sort_spend=stats.spend_fen)
    if f.orders_min is not None:
        contacts = contacts.filter(sort_orders__gte=f.orders_min)
    if f.orders_max is not None:
        contacts = contacts.filter(sort_orders__lte=f.orders_max)
    if f.spend_min_fen is not None:
        contacts = contacts.filter(sort_spend__gte=f.spend_min_fen)
    if f.spend_max_fen is not None:
        contacts = contacts.filter(sort_spend__lte=f.spend_max_fen)
    if f.customer_type:
        contacts = contacts.alias(
            customer_type=customer_type_expression(now=now, stats=stats)
        ).filter(customer_type=f.customer_type)
    return contacts.order_by(*_ordering(f.sort or ContactSort.LAST_ACTIVE_DESC))


@dataclass(frozen=True)
class StaffChip:
    id: int
    name: str


@dataclass(frozen=True)
class TagChip:
    id: int
    name: str
    group_id: int
    source: str


def contact_rows(contacts: QuerySet[Contact]) -> QuerySet[Contact]:
    """The list's rows with their tier and channel; contact_rows_attach adds the rest."""
    return contacts.select_related("tier", "source_channel")


def contact_rows_attach(contacts: list[Contact], *, now: datetime | None = None) -> None:
    """Give a page of contacts what their rows show, in three queries whatever the page size.

    Sets .staff_list (StaffChip of each active follow), .tag_list (TagChip, in tag group
    order), .order_count, .spend_fen and .customer_type. Plain tuples rather than model
    instances: a page of 50 customers with 20 tags each is a thousand tags.
    """
    ids = [contact.pk for contact in contacts]
    staff: dict[int, list[StaffChip]] = defaultdict(list)
    for contact_id, staff_id, name in (
        active_follows()
        .filter(contact_id__in=ids)
        .order_by("added_at", "pk")
        .values_list("contact_id", "staff_id", "staff__name")
    ):
        staff[contact_id].append(StaffChip(staff_id, name))
    tags: dict[int, list[TagChip]] = defaultdict(list)
    for contact_id, tag_id, name, group_id, source in (
        ContactTag.objects.filter(contact_id__in=ids)
        .order_by("tag__group__order", "tag__group_id", "tag__order", "tag__name")
        .values_list("contact_id", "tag_id", "tag__name", "tag__group_id", "source")
    ):
        tags[contact_id].append(TagChip(tag_id, name, group_id, source))
    stats = contact_stats(ids, now=now)
    for contact in contacts:
        row = stats.get(contact.pk, {})
        contact.staff_list = staff.get(contact.pk, [])
        contact.tag_list = tags.get(contact.pk, [])
        contact.order_count = row.get("order_count", 0)
        contact.spend_fen = row.get("spend_fen", 0)
        contact.customer_type = row.get("customer_type", CustomerType.UNCLASSIFIED)


# --- the contact page (客户 360) --------------------------------------------------------------


@dataclass
class GroupStays:
    group: object
    stays: list = field(default_factory=list)

    @property
    def is_member(self) -> bool:
        return any(stay.left_at is None for stay in self.stays)


@dataclass
class ContactProfile:
    """Everything the contact page shows except the timeline (which pages on its own)."""

    contact: Contact
    follows: list[Follow]
    notes_by_kind: list[tuple[str, str, list[ContactNote]]]
    tags_by_group: list[tuple[object, list[ContactTag]]]
    tier_rights: list[str]
    points_entries: list[PointsEntry]
    orders: list[Event]
    order_count: int
    spend_fen: int
    customer_type: CustomerType
    groups: list[GroupStays]
    referrer_visible: bool
    referrals: list[Contact]
    referral_count: int
    visible_referral_ids: set[int]


def _rights_as_text(rights) -> list[str]:
    """MemberTier.rights as lines of text, whether stored as strings or small dicts."""
    if isinstance(rights, dict):
        rights = [rights]
    lines = []
    for right in rights or []:
        if isinstance(right, dict):
            lines.append(str(right.get("name") or right.get("title") or right))
        else:
            lines.append(str(right))
    return lines


def contact_profile(*, user, contact_id: int, now: datetime | None = None) -> ContactProfile:
    """The contact page's data for a contact this login may see; Contact.DoesNotExist if not.

    A fixed number of queries whatever the contact's history: one per section.
    """
    contact = (
        contacts_visible_to(user)
        .select_related("tier", "source_channel", "referrer")
        .get(pk=contact_id)
    )
    follows = list(contact.follows.select_related("staff", "channel").order_by("added_at", "pk"))
    notes = list(contact.notes.select_related("author").order_by("-created_at", "-pk"))
    by_kind = defaultdict(list)
    for note in notes:
        by_kind[note.kind].append(note)
    notes_by_kind = [
        (kind, label, by_kind.get(kind, [])) for kind, label in ContactNote.Kind.choices
    ]

    tags = list(
        contact.contact_tags.select_related("tag__group").order_by(
            "tag__group__order", "tag__group__name", "tag__order", "tag__name"
        )
    )
    tags_by_group: dict[int, tuple[object, list]] = {}
    for contact_tag in tags:
        group = contact_tag.tag.group
        tags_by_group.setdefault(group.pk, (group, []))[1].append(contact_tag)

    points_entries = list(
        contact.points_entries.order_by("-created_at", "-pk")[:POINTS_ENTRIES_SHOWN]
    )
    orders = list(
        Event.objects.filter(contact_id=contact.pk, type__in=ORDER_EVENT_TYPES)
        .select_related("group", "campaign")
        .order_by("-occurred_at", "-pk")[:ORDERS_SHOWN]
    )
    stats = contact_stats([contact.pk], now=now).get(contact.pk, {})

    stays = list(
        _membership_model()
        .objects.filter(contact=contact)
        .select_related("group")
        .order_by("-joined_at", "-pk")
    )
    groups: dict[int, GroupStays] = {}
    for stay in stays:
        groups.setdefault(stay.group_id, GroupStays(group=stay.group)).stays.append(stay)

    referrals = list(contact.referrals.order_by("-first_added_at", "-pk")[:REFERRALS_SHOWN])
    referral_count = (
        len(referrals) if len(referrals) < REFERRALS_SHOWN else contact.referrals.count()
    )
    related_ids = [c.pk for c in referrals] + ([contact.referrer_id] if contact.referrer_id else [])
    if user.is_manager or user.is_read_only:
        visible = set(related_ids)
    elif related_ids:
        visible = set(
            contacts_visible_to(user).filter(pk__in=related_ids).values_list("pk", flat=True)
        )
    else:
        visible = set()

    return ContactProfile(
        contact=contact,
        follows=follows,
        notes_by_kind=notes_by_kind,
        tags_by_group=list(tags_by_group.values()),
        tier_rights=_rights_as_text(contact.tier.rights) if contact.tier else [],
        points_entries=points_entries,
        orders=orders,
        order_count=stats.get("order_count", 0),
        spend_fen=stats.get("spend_fen", 0),
        customer_type=stats.get("customer_type", CustomerType.UNCLASSIFIED),
        groups=list(groups.values()),
        referrer_visible=contact.referrer_id in visible,
        referrals=referrals,
        referral_count=referral_count,
        visible_referral_ids=visible,
    )


def contact_timeline(*, contact_id: int) -> QuerySet[Event]:
    """Every event of one contact, newest first, with the names the timeline shows."""
    return (
        Event.objects.filter(contact_id=contact_id)
        .select_related("group", "staff", "channel", "campaign")
        .order_by("-occurred_at", "-pk")
    )


def _label(choices, value) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return str(value)


def timeline_details(events: list[Event]) -> None:
    """Set .detail on each event: what its payload says, in words (one query for tag names)."""
    from analytics.templatetags.money import yuan

    # Tag events carry {"tag_id": pk, "tag": name} (contacts.tags, the demo, the sync).
    tag_ids = {
        e.payload.get("tag_id")
        for e in events
        if e.type in (EventType.TAG_ADDED, EventType.TAG_REMOVED) and isinstance(e.payload, dict)
    }
    tag_ids.discard(None)
    tag_model = ContactTag._meta.get_field("tag").related_model
    tag_names = (
        dict(tag_model.objects.filter(pk__in=tag_ids).values_list("pk", "name")) if tag_ids else {}
    )
    membership = _membership_model()
    for event in events:
        payload = event.payload if isinstance(event.payload, dict) else {}
        parts = []
        if event.type in ORDER_EVENT_TYPES:
            parts.append(yuan(event.amount))
            if payload.get("order_no"):
                parts.append(str(payload["order_no"]))
        elif event.type in (EventType.TAG_ADDED, EventType.TAG_REMOVED):
            tag_id = payload.get("tag_id")
            parts.append(tag_names.get(tag_id) or str(payload.get("tag") or tag_id or ""))
        elif event.type == EventType.STAGE_CHANGED:
            before = _label(Contact.Stage, payload.get("from"))
            parts.append(f"{before} → {_label(Contact.Stage, payload.get('to'))}")
        elif event.type == EventType.TIER_CHANGED:
            parts.append(f"{payload.get('from', '—')} → {payload.get('to', '—')}")
        elif event.type == EventType.POINTS_CHANGED and event.amount is not None:
            parts.append(f"{event.amount:+d}")
        elif event.type == EventType.GROUP_JOINED and payload.get("scene") is not None:
            parts.append(_label(membership.JoinScene, payload["scene"]))
        elif event.type == EventType.GROUP_LEFT and payload.get("scene") is not None:
            parts.append(_label(membership.QuitScene, payload["scene"]))
        elif event.type == EventType.CONTACT_TRANSFERRED:
            parts.append(f"{payload.get('from', '')} → {payload.get('to', '')}")
        event.detail = " · ".join(p for p in parts if p)
