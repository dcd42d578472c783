"""Dashboard pages of groups."""

app_name = "groups"
urlpatterns: list = []
