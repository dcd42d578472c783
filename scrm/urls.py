"""URL map: pages, the REST API and its schema, the WeCom webhook (later), language switch."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from analytics import views as analytics_views
from scrm import account
from wecom.callback import wecom_callback

urlpatterns = [
    path("", analytics_views.DashboardView.as_view(), name="dashboard"),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="registration/login.html"),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("contacts/", include("contacts.urls")),
    path("groups/", include("groups.urls")),
    path("sop/", include("sop.urls")),
    path("analytics/", include("analytics.urls")),
    path("campaigns/", include("campaigns.urls")),
    # Customer-facing campaign pages: a signed token instead of a login.
    path("c/", include("campaigns.landing_urls")),
    path("api/", include("contacts.api_urls")),
    path("api/", include("groups.api_urls")),
    path("api/", include("sop.api_urls")),
    path("api/", include("contacts.loyalty_api")),
    path("api/", include("analytics.api_urls")),
    path("api/", include("campaigns.api_urls")),
    path("io/", include("contacts.io_urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI from local static files; login_required sends strangers to the login page.
    path(
        "api/docs/",
        login_required(SpectacularSwaggerView.as_view(url_name="api-schema")),
        name="api-docs",
    ),
    path("settings/", account.settings_page, name="settings"),
    path("settings/token/", account.api_token_issue_view, name="settings-token-issue"),
    path(
        "settings/token/<int:user_id>/revoke/",
        account.api_token_revoke_view,
        name="settings-token-revoke",
    ),
    # Verified by WeCom's signature instead of a login.
    path("wecom/callback", wecom_callback, name="wecom-callback"),
    path("healthz", analytics_views.healthz, name="healthz"),
]
