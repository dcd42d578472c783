"""Django admin for managers: the SOP plans, content library and the delivery ledger."""

from django.contrib import admin

from sop.models import ContentItem, Delivery, MassMessage, Plan, Step


class StepInline(admin.TabularInline):
    model = Step
    extra = 0
    raw_id_fields = ["content"]


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "status", "priority", "staff", "activated_at"]
    list_filter = ["kind", "status"]
    search_fields = ["name"]
    raw_id_fields = ["staff", "campaign", "groups", "owners", "contacts"]
    inlines = [StepInline]


@admin.register(ContentItem)
class ContentItemAdmin(admin.ModelAdmin):
    list_display = ["title", "purpose", "category", "archived", "updated_at"]
    list_filter = ["purpose", "archived"]
    search_fields = ["title", "text"]


@admin.register(MassMessage)
class MassMessageAdmin(admin.ModelAdmin):
    list_display = ["pk", "sender", "chat_type", "status", "msgid", "sent_at", "confirmed_at"]
    list_filter = ["status", "chat_type"]
    raw_id_fields = ["sender", "content"]


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "pk",
        "plan",
        "step",
        "group",
        "contact",
        "sender",
        "due_at",
        "status",
        "reason",
    ]
    list_filter = ["status", "reason"]
    raw_id_fields = ["plan", "step", "enrolment", "group", "contact", "sender", "message"]
