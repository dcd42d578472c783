"""The operators' campaign pages, mounted at /campaigns/ ("campaigns" names the landing)."""

from django.urls import path

from campaigns import views

app_name = "campaign_admin"
urlpatterns = [
    path("", views.CampaignListView.as_view(), name="list"),
    path("new/", views.CampaignEditView.as_view(), name="new"),
    path("<int:pk>/", views.CampaignDetailView.as_view(), name="detail"),
    path("<int:pk>/edit/", views.CampaignEditView.as_view(), name="edit"),
    path("<int:pk>/move/", views.CampaignMoveView.as_view(), name="move"),
    path("<int:pk>/announce/", views.CampaignAnnounceView.as_view(), name="announce"),
    path("<int:pk>/coupon-batches/", views.CouponBatchCreateView.as_view(), name="batch_create"),
    path("<int:pk>/coupons/issue/", views.CouponIssueView.as_view(), name="coupon_issue"),
    path("<int:pk>/coupons/redeem/", views.CouponRedeemView.as_view(), name="coupon_redeem"),
    path("<int:pk>/stock/", views.StockAddView.as_view(), name="stock_add"),
    path("<int:pk>/draw/", views.ContestDrawView.as_view(), name="contest_draw"),
]
