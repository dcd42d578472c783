"""Django admin for logins and their roles."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from scrm.models import User


@admin.register(User)
class ScrmUserAdmin(UserAdmin):
    list_display = ["username", "role", "is_active", "last_login"]
    list_filter = ["role", "is_active"]
    fieldsets = [*UserAdmin.fieldsets, ("SCRM", {"fields": ["role"]})]
