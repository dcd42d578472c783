"""REST API of the 数据 (analytics) section, for a date range: the overview, group and channel
comparison, the funnel, join cohorts, the customer-type split, customer value and a slice's
daily series; and the costs recorded per group, channel code or campaign.
Thin: analytics.dashboard, funnel, cohorts, customers and costs compute.

Every ratio is {"value": "0.1234" or null, "numerator": n, "denominator": d}; null means
undefined (nothing to divide by), never 0. Operators get only their own groups' numbers
(dashboard.groups_for), managers and analysts everyone's.
"""

from decimal import ROUND_HALF_UP, Decimal

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import cohorts, costs, customers, dashboard
from analytics.funnel import funnel
from analytics.metrics import DailyMean, Period, Ratio
from analytics.rollups import FIGURES
from contacts.filters import CustomerType
from groups.selectors import user_sees_all
from scrm.roles import RolePermission

VALUE_PLACES = Decimal("0.0001")
MAX_HORIZON = 52


class RangeSerializer(serializers.Serializer):
    """The query of every report: a range of whole Shanghai days (default: the last 30)."""

    first = serializers.DateField(
        required=False, help_text="first day (Shanghai), default: 30 days before yesterday"
    )
    last = serializers.DateField(
        required=False, help_text="last day (Shanghai), default: yesterday"
    )

    def validate(self, data):
        default = dashboard.default_period()
        first, last = data.pop("first", default.first), data.pop("last", default.last)
        if last < first:
            raise serializers.ValidationError({"last": ["Must not be before first."]})
        if (last - first).days + 1 > dashboard.MAX_DAYS:
            raise serializers.ValidationError(
                {"last": [f"The range may cover at most {dashboard.MAX_DAYS} days."]}
            )
        return {**data, "period": Period(first, last)}


class CohortQuerySerializer(RangeSerializer):
    unit = serializers.ChoiceField(
        choices=list(cohorts.UNITS),
        default="week",
        help_text="cohorts by week of first joining (Monday to Sunday) or by day",
    )
    horizon = serializers.IntegerField(
        min_value=0,
        max_value=MAX_HORIZON,
        default=dashboard.COHORT_HORIZON,
        help_text="how many weeks or days after joining to follow each cohort",
    )


class SeriesQuerySerializer(RangeSerializer):
    slice = serializers.CharField(
        required=False,
        help_text=(
            "all | group:<id> | type:<group type> | owner:<staff id> | channel:<id>; "
            "default: all for managers and analysts, owner:<own staff id> for operators, "
            "who may read only their own groups, owner slice and channel codes"
        ),
    )


class CustomerTypesQuerySerializer(serializers.Serializer):
    last = serializers.DateField(
        required=False,
        help_text="the split as of the end of this day (Shanghai); default: yesterday",
    )


def _whole(n) -> int:
    # Costs spread over days can carry fractions of a fen; the value keeps them exactly.
    return int(Decimal(n).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def ratio_data(ratio: Ratio | None) -> dict | None:
    if ratio is None:
        return None
    value = ratio.value
    return {
        "value": None if value is None else str(value.quantize(VALUE_PLACES, ROUND_HALF_UP)),
        "numerator": _whole(ratio.numerator),
        "denominator": _whole(ratio.denominator),
    }


def daily_data(mean: DailyMean, *, with_days: bool) -> dict:
    value = mean.value
    data = {
        "value": None if value is None else str(value.quantize(VALUE_PLACES, ROUND_HALF_UP)),
        "defined_days": sum(1 for r in mean.days.values() if r.value is not None),
    }
    if with_days:
        data["days"] = [{"day": day, **ratio_data(r)} for day, r in mean.days.items()]
    return data


class RatioSerializer(serializers.Serializer):
    value = serializers.CharField(
        allow_null=True, help_text="decimal as text, 4 places; null when undefined"
    )
    numerator = serializers.IntegerField()
    denominator = serializers.IntegerField()


class DayRatioSerializer(RatioSerializer):
    day = serializers.DateField()


class DailyMeanSerializer(serializers.Serializer):
    value = serializers.CharField(
        allow_null=True, help_text="mean of the defined days; null when no day is defined"
    )
    defined_days = serializers.IntegerField()


class DailySeriesSerializer(DailyMeanSerializer):
    days = DayRatioSerializer(many=True)


class PeriodSerializer(serializers.Serializer):
    first = serializers.DateField()
    last = serializers.DateField()


class OverviewSerializer(serializers.Serializer):
    period = PeriodSerializer()
    members_start = serializers.IntegerField()
    members_end = serializers.IntegerField()
    leave_rate = RatioSerializer()
    retention = RatioSerializer()
    interaction_rate = DailySeriesSerializer()
    messages_per_member = DailySeriesSerializer()
    conversion = RatioSerializer()
    average_order_value = RatioSerializer(help_text="fen per buyer")
    repurchase_rate = RatioSerializer()
    referral_rate = RatioSerializer()
    block_rate = RatioSerializer()


class GroupBriefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    stage = serializers.CharField()


class GroupRowSerializer(serializers.Serializer):
    group = GroupBriefSerializer()
    focus = serializers.ListField(
        child=serializers.CharField(), help_text="the metrics the group's stage puts first"
    )
    members_start = serializers.IntegerField()
    members_end = serializers.IntegerField()
    joins = serializers.IntegerField()
    leave_rate = RatioSerializer()
    retention = RatioSerializer()
    interaction_rate = DailyMeanSerializer()
    messages_per_member = DailyMeanSerializer()
    conversion = RatioSerializer()
    average_order_value = RatioSerializer(help_text="fen per buyer")
    repurchase_rate = RatioSerializer()
    roi = RatioSerializer(help_text="attributed sales (fen) ÷ recorded cost (fen)")
    referral_rate = RatioSerializer()


class GroupComparisonSerializer(serializers.Serializer):
    period = PeriodSerializer()
    groups = GroupRowSerializer(many=True)


class ChannelBriefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.CharField()
    is_active = serializers.BooleanField()


class ChannelRowSerializer(serializers.Serializer):
    channel = ChannelBriefSerializer()
    exposures = serializers.IntegerField()
    joins = serializers.IntegerField()
    join_rate = RatioSerializer()
    roi = RatioSerializer(help_text="attributed sales (fen) ÷ recorded cost (fen)")


class ChannelComparisonSerializer(serializers.Serializer):
    period = PeriodSerializer()
    channels = ChannelRowSerializer(many=True)


class FunnelStepSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    count = serializers.IntegerField()
    from_previous = RatioSerializer(allow_null=True)
    from_first = RatioSerializer(allow_null=True)


class FunnelSerializer(serializers.Serializer):
    period = PeriodSerializer()
    steps = FunnelStepSerializer(many=True)


@extend_schema_field(
    {
        "type": "array",
        # drf-spectacular drops allow_null on a list's child; say "Ratio or null" here.
        "items": {"allOf": [{"$ref": "#/components/schemas/Ratio"}], "nullable": True},
    }
)
class RatioOrNullListField(serializers.ListField):
    child = RatioSerializer(allow_null=True)


class CohortRowSerializer(serializers.Serializer):
    start = serializers.DateField(help_text="the cohort's first day (a Monday for weeks)")
    size = serializers.IntegerField(help_text="people whose first join into the groups fell in it")
    retained = RatioOrNullListField(
        help_text=(
            "[N]: the share still a member at the end of the Nth week or day after joining "
            "(0: the joining week or day itself); null where that moment has not come yet"
        ),
    )


class LifecycleWeekSerializer(serializers.Serializer):
    week = serializers.DateField(help_text="the week's Monday")
    new = serializers.IntegerField(help_text="customers first added to a staff member that week")
    returning = serializers.IntegerField(help_text="active that week and the week before")
    resurrected = serializers.IntegerField(
        help_text="active that week, not the week before, but some week earlier"
    )
    dormant = serializers.IntegerField(help_text="active the week before, not that week")


class CohortsSerializer(serializers.Serializer):
    period = PeriodSerializer()
    unit = serializers.ChoiceField(choices=list(cohorts.UNITS))
    horizon = serializers.IntegerField()
    cohorts = CohortRowSerializer(many=True)
    lifecycle_weeks = LifecycleWeekSerializer(
        many=True,
        allow_null=True,
        help_text=(
            "every customer's lifecycle state per Monday-to-Sunday week of the range "
            "(active: spoke or ordered); null for operators, as it covers every customer"
        ),
    )


class ThresholdsSerializer(serializers.Serializer):
    low_need_max_orders = serializers.IntegerField(help_text="low-need: at most this many orders")
    loyal_months = serializers.IntegerField(help_text="loyal: ordered in each of these months")
    bargain_aov_fen = serializers.IntegerField(
        help_text="bargain hunter: average order value under this (fen)"
    )
    need_driven_quiet_days = serializers.IntegerField(
        help_text="need-driven: no order for this many days"
    )


class CustomerTypeSliceSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=CustomerType.choices)
    label = serializers.CharField()
    count = serializers.IntegerField()
    share = RatioSerializer(help_text="of the customers the login may see")
    list_url = serializers.CharField(help_text="the contact list filtered to this type (now)")


class CustomerTypesSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField()
    thresholds = ThresholdsSerializer()
    types = CustomerTypeSliceSerializer(many=True)


class SeriesDaySerializer(serializers.Serializer):
    day = serializers.DateField()
    members_end = serializers.IntegerField(help_text="members at 24:00, a person counted once")
    joins = serializers.IntegerField(help_text="people who joined (channel: joins through it)")
    leaves = serializers.IntegerField(help_text="people who left and were no member at 24:00")
    speakers = serializers.IntegerField()
    messages = serializers.IntegerField()
    buyers = serializers.IntegerField()
    orders = serializers.IntegerField()
    revenue_fen = serializers.IntegerField()
    exposures = serializers.IntegerField(help_text="channel slices only")
    interaction_rate = RatioSerializer(help_text="speakers ÷ members_end")
    messages_per_member = RatioSerializer(help_text="messages ÷ members_end")
    average_order_value = RatioSerializer(help_text="revenue_fen ÷ buyers")
    join_rate = RatioSerializer(help_text="joins ÷ exposures (channel slices)")


class SeriesSerializer(serializers.Serializer):
    period = PeriodSerializer()
    slice = serializers.CharField()
    interaction_rate = DailyMeanSerializer(help_text="the period's mean of the daily values")
    messages_per_member = DailyMeanSerializer(help_text="the period's mean of the daily values")
    days = SeriesDaySerializer(many=True)


def _query(request, serializer=RangeSerializer) -> dict:
    params = serializer(data=request.query_params)
    params.is_valid(raise_exception=True)
    return params.validated_data


def _period(request) -> Period:
    return _query(request)["period"]


def _period_data(period: Period) -> dict:
    return {"first": period.first, "last": period.last}


class OverviewApi(APIView):
    """数据总览: the period's metrics over every group the login may see, as one slice
    (an operator: their own groups, and block rate over their own customers)."""

    permission_classes = [RolePermission]

    @extend_schema(parameters=[RangeSerializer], responses=OverviewSerializer)
    def get(self, request):
        period = _period(request)
        o = dashboard.overview(user=request.user, period=period)
        data = {
            "period": _period_data(period),
            "members_start": o.members_start,
            "members_end": o.members_end,
            "interaction_rate": daily_data(o.interaction_rate, with_days=True),
            "messages_per_member": daily_data(o.messages_per_member, with_days=True),
        }
        for name in (
            "leave_rate",
            "retention",
            "conversion",
            "average_order_value",
            "repurchase_rate",
            "referral_rate",
            "block_rate",
        ):
            data[name] = ratio_data(getattr(o, name))
        return Response(OverviewSerializer(data).data)


class GroupComparisonApi(APIView):
    """社群对比: one row per live group the login may see, by name."""

    permission_classes = [RolePermission]

    @extend_schema(parameters=[RangeSerializer], responses=GroupComparisonSerializer)
    def get(self, request):
        period = _period(request)
        rows = []
        for f in dashboard.group_comparison(user=request.user, period=period):
            row = {
                "group": {"id": f.group.pk, "name": f.group.name, "stage": f.group.stage},
                "focus": list(f.focus),
                "members_start": f.members_start,
                "members_end": f.members_end,
                "joins": f.joins,
                "interaction_rate": daily_data(f.interaction_rate, with_days=False),
                "messages_per_member": daily_data(f.messages_per_member, with_days=False),
            }
            for name in (
                "leave_rate",
                "retention",
                "conversion",
                "average_order_value",
                "repurchase_rate",
                "roi",
                "referral_rate",
            ):
                row[name] = ratio_data(getattr(f, name))
            rows.append(row)
        data = {"period": _period_data(period), "groups": rows}
        return Response(GroupComparisonSerializer(data).data)


class ChannelComparisonApi(APIView):
    """渠道对比: exposures, joins, join rate and ROI per channel code the login may see."""

    permission_classes = [RolePermission]

    @extend_schema(parameters=[RangeSerializer], responses=ChannelComparisonSerializer)
    def get(self, request):
        period = _period(request)
        rows = [
            {
                "channel": {
                    "id": f.channel.pk,
                    "name": f.channel.name,
                    "kind": f.channel.kind,
                    "is_active": f.channel.is_active,
                },
                "exposures": f.exposures,
                "joins": f.joins,
                "join_rate": ratio_data(f.join_rate),
                "roi": ratio_data(f.roi),
            }
            for f in dashboard.channel_comparison(user=request.user, period=period)
        ]
        data = {"period": _period_data(period), "channels": rows}
        return Response(ChannelComparisonSerializer(data).data)


class FunnelApi(APIView):
    """转化漏斗: exposure → join → speak → order → repurchase → refer (see analytics.funnel)."""

    permission_classes = [RolePermission]

    @extend_schema(parameters=[RangeSerializer], responses=FunnelSerializer)
    def get(self, request):
        period = _period(request)
        steps = [
            {
                "key": step.key,
                "label": step.label,
                "count": step.count,
                "from_previous": ratio_data(step.from_previous),
                "from_first": ratio_data(step.from_first),
            }
            for step in funnel(dashboard.groups_for(request.user), period)
        ]
        return Response(FunnelSerializer({"period": _period_data(period), "steps": steps}).data)


class CohortsApi(APIView):
    """留存队列: join-cohort retention as a triangle, by week or day of first joining the
    groups the login may see (an operator: their own); and, for managers and analysts, every
    customer's lifecycle state week by week."""

    permission_classes = [RolePermission]

    @extend_schema(parameters=[CohortQuerySerializer], responses=CohortsSerializer)
    def get(self, request):
        query = _query(request, CohortQuerySerializer)
        period, unit, horizon = query["period"], query["unit"], query["horizon"]
        rows = cohorts.join_cohorts(
            dashboard.groups_for(request.user),
            first=period.first,
            last=period.last,
            unit=unit,
            horizon=horizon,
        )
        data = {
            "period": _period_data(period),
            "unit": unit,
            "horizon": horizon,
            "cohorts": [
                {
                    "start": row.start,
                    "size": row.size,
                    "retained": [ratio_data(r) for r in row.retained],
                }
                for row in rows
            ],
            # lifecycle_weeks counts every customer, not the login's groups.
            "lifecycle_weeks": (
                [vars(w) for w in cohorts.lifecycle_weeks(first=period.first, last=period.last)]
                if user_sees_all(request.user)
                else None
            ),
        }
        return Response(CohortsSerializer(data).data)


class CustomerTypesApi(APIView):
    """四类客户: the customers the login may see (an operator: their own) by type, as of the
    end of a day, with the thresholds the rules use."""

    permission_classes = [RolePermission]

    @extend_schema(parameters=[CustomerTypesQuerySerializer], responses=CustomerTypesSerializer)
    def get(self, request):
        query = _query(request, CustomerTypesQuerySerializer)
        day = query.get("last") or dashboard.default_period().last
        as_of = Period(day, day).end
        slices = customers.type_split(user=request.user, now=as_of)
        data = {
            "as_of": as_of,
            "thresholds": customers.type_thresholds(),
            "types": [
                {
                    "type": s.type,
                    "label": s.label,
                    "count": s.count,
                    "share": ratio_data(s.share),
                    "list_url": s.list_url,
                }
                for s in slices
            ],
        }
        return Response(CustomerTypesSerializer(data).data)


class SeriesApi(APIView):
    """日趋势: a slice's figures day by day, from the daily rollups (refreshed every few
    minutes), with the ratios each day gives."""

    permission_classes = [RolePermission]

    @extend_schema(parameters=[SeriesQuerySerializer], responses=SeriesSerializer)
    def get(self, request):
        query = _query(request, SeriesQuerySerializer)
        period = query["period"]
        try:
            slice = query.get("slice") or dashboard.default_slice(request.user)
            series = dashboard.daily_series(user=request.user, slice=slice, period=period)
        except dashboard.SliceNotAllowed as exc:
            raise PermissionDenied(f"slice: {exc}") from None
        except ValueError as exc:
            raise serializers.ValidationError({"slice": [str(exc)]}) from None
        days, ratios = [], {}
        for day, row in series.items():
            ratios[day] = dashboard.daily_ratios(row)
            days.append(
                {
                    "day": day,
                    **{name: getattr(row, name) for name in FIGURES},
                    **{name: ratio_data(r) for name, r in ratios[day].items()},
                }
            )
        data = {"period": _period_data(period), "slice": slice, "days": days}
        for name in ("interaction_rate", "messages_per_member"):
            mean = DailyMean({day: r[name] for day, r in ratios.items()})
            data[name] = daily_data(mean, with_days=False)
        return Response(SeriesSerializer(data).data)


# --- customer value -------------------------------------------------------------------------


class RfmCellSerializer(serializers.Serializer):
    recency = serializers.IntegerField(help_text="quintile, 5 = bought most recently")
    frequency = serializers.IntegerField(help_text="quintile, 5 = most orders")
    monetary = serializers.IntegerField(help_text="quintile, 5 = most spent")
    contacts = serializers.IntegerField()
    revenue_fen = serializers.IntegerField(help_text="net of refunds, all time up to as_of")


class ChannelValueSerializer(serializers.Serializer):
    channel_id = serializers.IntegerField(
        allow_null=True, help_text="null: customers with no source channel"
    )
    name = serializers.CharField()
    contacts = serializers.IntegerField()
    revenue_fen = serializers.IntegerField()
    cost_fen = serializers.CharField(help_text="all cost recorded against the channel (fen)")
    acquisition_cost_fen = RatioSerializer(help_text="cost ÷ customers it brought")
    lifetime_value_fen = RatioSerializer(help_text="(revenue − cost) ÷ customers it brought")


class CustomerValueSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField()
    rfm = RfmCellSerializer(many=True)
    channels = ChannelValueSerializer(many=True)


class CustomerValueApi(APIView):
    """客户价值: buyers' RFM layers and lifetime value per source channel, as of the end of a
    day. Computed over every customer, so managers and analysts only (operators get 403)."""

    permission_classes = [RolePermission]

    @extend_schema(parameters=[CustomerTypesQuerySerializer], responses=CustomerValueSerializer)
    def get(self, request):
        if not user_sees_all(request.user):
            raise PermissionDenied("Customer value covers every customer: managers and analysts.")
        query = _query(request, CustomerTypesQuerySerializer)
        day = query.get("last") or dashboard.default_period().last
        as_of = Period(day, day).end
        layers, values = customers.customer_value(now=as_of)
        data = {
            "as_of": as_of,
            "rfm": [vars(cell) for cell in layers],
            "channels": [
                {
                    "channel_id": v.channel_id,
                    "name": v.name,
                    "contacts": v.contacts,
                    "revenue_fen": v.revenue_fen,
                    "cost_fen": str(v.cost_fen),
                    "acquisition_cost_fen": ratio_data(v.acquisition_cost_fen),
                    "lifetime_value_fen": ratio_data(v.lifetime_value_fen),
                }
                for v in values
            ],
        }
        return Response(CustomerValueSerializer(data).data)


# --- costs ----------------------------------------------------------------------------------


class CostEntrySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    target_kind = serializers.ChoiceField(choices=list(costs.TARGET_KINDS))
    target_id = serializers.IntegerField()
    target_name = serializers.CharField()
    amount_fen = serializers.IntegerField()
    first = serializers.DateField()
    last = serializers.DateField()
    note = serializers.CharField(allow_blank=True)
    recorded_by = serializers.CharField(allow_blank=True, help_text="username")
    recorded_at = serializers.DateTimeField()


class CostListSerializer(serializers.Serializer):
    costs = CostEntrySerializer(many=True)


class CostCreateSerializer(serializers.Serializer):
    target_kind = serializers.ChoiceField(choices=list(costs.TARGET_KINDS))
    target_id = serializers.IntegerField(
        help_text="a group, channel code or campaign the login may see (operators: their own "
        "groups and channel codes; campaigns: managers only)"
    )
    amount_fen = serializers.IntegerField(help_text="more than 0, in fen")
    first = serializers.DateField(help_text="first day of the cost's period (Shanghai)")
    last = serializers.DateField(help_text="last day; the amount is spread evenly over the days")
    note = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=costs.NOTE_MAX_LENGTH
    )
    key = serializers.CharField(
        required=False,
        max_length=100,
        help_text="Idempotency key: send the same one when retrying, to record the cost once.",
    )


class CostsApi(APIView):
    """投入: costs recorded against the groups, channel codes and campaigns the login may see,
    newest first; POST records one. Recorded costs cannot be edited or deleted (the event log
    is append-only). Analysts read only."""

    permission_classes = [RolePermission]

    @extend_schema(responses=CostListSerializer)
    def get(self, request):
        entries = [vars(e) for e in costs.costs_visible_to(request.user)]
        return Response(CostListSerializer({"costs": entries}).data)

    @extend_schema(request=CostCreateSerializer, responses={201: CostEntrySerializer})
    def post(self, request):
        params = CostCreateSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        try:
            event = costs.cost_record(user=request.user, **params.validated_data)
        except costs.CostError as exc:
            raise serializers.ValidationError({exc.field: [str(exc)]}) from None
        [entry] = costs.cost_entries([event])
        return Response(CostEntrySerializer(vars(entry)).data, status=status.HTTP_201_CREATED)
