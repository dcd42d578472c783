"""Django admin for managers: campaigns, orders and costs."""

from django.contrib import admin

from campaigns.models import Campaign, Cost, Order


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "type", "state", "starts_at", "ends_at"]
    list_filter = ["type", "state"]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["order_no", "contact", "amount_fen", "status", "ordered_at"]
    raw_id_fields = ["contact", "group", "channel", "campaign", "referrer"]
    search_fields = ["order_no"]


admin.site.register(Cost)
