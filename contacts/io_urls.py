"""Pages and API for importing and exporting contacts and orders, mounted under /io/."""

app_name = "io"
urlpatterns: list = []
