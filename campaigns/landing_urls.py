"""The public, token-addressed customer pages, mounted at /c/."""

from django.urls import path

from campaigns import landing

app_name = "campaigns"
urlpatterns = [
    path("<str:token>/", landing.landing, name="landing"),
    path("<str:token>/<slug:action>/", landing.landing_act, name="landing-act"),
]
