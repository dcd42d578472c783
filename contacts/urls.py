"""Dashboard pages of contacts."""

app_name = "contacts"
urlpatterns: list = []
