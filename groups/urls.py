"""Dashboard pages of groups, mounted at /groups/."""

from django.urls import path

from groups import views

app_name = "groups"
urlpatterns = [
    path("", views.GroupListView.as_view(), name="list"),
    path("<int:pk>/", views.GroupDetailView.as_view(), name="detail"),
    path("<int:pk>/edit/", views.GroupEditView.as_view(), name="edit"),
    path("<int:pk>/members/", views.GroupMembersView.as_view(), name="members"),
    path(
        "<int:pk>/members/<int:stay_pk>/role/",
        views.MemberRoleView.as_view(),
        name="member-role",
    ),
    path("<int:pk>/history/", views.GroupHistoryView.as_view(), name="history"),
    path("<int:pk>/auto-replies/new/", views.AutoReplyEditView.as_view(), name="auto-reply-new"),
    path(
        "<int:pk>/auto-replies/<int:reply_pk>/",
        views.AutoReplyEditView.as_view(),
        name="auto-reply-edit",
    ),
    path(
        "<int:pk>/auto-replies/<int:reply_pk>/delete/",
        views.AutoReplyDeleteView.as_view(),
        name="auto-reply-delete",
    ),
    path("overlap/", views.OverlapView.as_view(), name="overlap"),
    path("channel-codes/", views.ChannelCodeListView.as_view(), name="channel-codes"),
    path("channel-codes/new/", views.ChannelCodeEditView.as_view(), name="channel-code-new"),
    path("channel-codes/<int:pk>/", views.ChannelCodeEditView.as_view(), name="channel-code-edit"),
    path(
        "channel-codes/<int:pk>/delete/",
        views.ChannelCodeDeleteView.as_view(),
        name="channel-code-delete",
    ),
    path("handovers/", views.HandoverListView.as_view(), name="handovers"),
    path("handovers/new/", views.HandoverCreateView.as_view(), name="handover-new"),
    path("handovers/<int:pk>/", views.HandoverDetailView.as_view(), name="handover"),
]
