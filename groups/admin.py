"""Django admin for managers: groups and their membership history."""

from django.contrib import admin

from groups.models import Group, GroupMembership


@admin.register(Group)
class GroupAdmin(admin.ModelAdmin):
    list_display = ["name", "chat_id", "owner", "type", "model", "stage", "dismissed_at"]
    list_filter = ["type", "model", "stage"]
    search_fields = ["name", "chat_id"]


@admin.register(GroupMembership)
class GroupMembershipAdmin(admin.ModelAdmin):
    list_display = ["group", "contact", "staff", "role", "joined_at", "left_at"]
    list_filter = ["role"]
    raw_id_fields = ["group", "contact", "staff", "channel"]
