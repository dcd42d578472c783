"""Django admin for managers: the raw tables, until the dashboard pages cover them."""

from django.contrib import admin

from contacts.models import (
    ChannelCode,
    Contact,
    Follow,
    MemberTier,
    PointsEntry,
    Staff,
    Tag,
    TagGroup,
)


@admin.register(Staff)
class StaffAdmin(admin.ModelAdmin):
    list_display = ["name", "userid", "user", "status"]
    list_filter = ["status"]
    search_fields = ["name", "userid"]


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["name", "external_userid", "tier", "stage", "influence", "opted_out"]
    list_filter = ["stage", "tier", "influence", "opted_out"]
    search_fields = ["name", "external_userid"]
    raw_id_fields = ["referrer", "source_channel"]


@admin.register(Follow)
class FollowAdmin(admin.ModelAdmin):
    list_display = ["contact", "staff", "remark", "added_at", "state"]
    raw_id_fields = ["contact", "staff", "channel"]


@admin.register(ChannelCode)
class ChannelCodeAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "state", "is_active"]


admin.site.register([MemberTier, TagGroup, Tag])


@admin.register(PointsEntry)
class PointsEntryAdmin(admin.ModelAdmin):
    # The ledger is append-only: entries are made by services, never edited by hand.
    list_display = ["contact", "delta", "balance_after", "reason", "created_at"]
    raw_id_fields = ["contact"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False
