"""Dashboard pages of contacts."""

from django.urls import path

from contacts import views

app_name = "contacts"
urlpatterns = [
    path("", views.ContactListView.as_view(), name="list"),
    path("bulk/", views.ContactBulkView.as_view(), name="bulk"),
    path("<int:pk>/", views.ContactDetailView.as_view(), name="detail"),
    path("<int:pk>/notes/", views.ContactNoteAddView.as_view(), name="note-add"),
    path("<int:pk>/notes/<int:note_pk>/", views.ContactNoteEditView.as_view(), name="note-edit"),
]
