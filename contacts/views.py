"""Dashboard pages of contacts: the list with bulk actions, and the contact page (客户 360)."""

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.paginator import Paginator
from django.http import Http404, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import TemplateView

from contacts.filters import ContactFilterError, ContactFilterForm, contact_filters_parse
from contacts.models import Contact, ContactNote, Staff
from contacts.remarks import (
    EXPORT_FORMATS,
    BulkAction,
    RemarkError,
    contact_note_add,
    contact_note_edit,
    contacts_bulk_act,
)
from contacts.selectors import (
    TIMELINE_PAGE_SIZE,
    contact_profile,
    contact_rows,
    contact_rows_attach,
    contact_timeline,
    contacts_filtered,
    contacts_visible_to,
    customer_type_thresholds,
    timeline_details,
)
from scrm.roles import RoleRequiredMixin, can_write

PAGE_SIZE = 50


def _query_without(params: QueryDict, *names: str) -> str:
    """The current query string minus some parameters, for links that change only those."""
    query = params.copy()
    for name in names:
        query.pop(name, None)
    return query.urlencode()


class ContactListView(RoleRequiredMixin, TemplateView):
    """The customer list (客户列表): filters, sort, 50 a page, bulk actions on the result."""

    template_name = "contacts/contact_list.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        user = self.request.user
        form = ContactFilterForm(self.request.GET, user=user, for_page=True)
        page = rows = None
        if form.is_valid():
            contacts = contacts_filtered(user=user, filters=form.filters())
            paginator = Paginator(contact_rows(contacts), PAGE_SIZE)
            page = paginator.get_page(self.request.GET.get("page"))
            rows = list(page.object_list)
            contact_rows_attach(rows)
        context.update(
            form=form,
            page=page,
            rows=rows,
            filter_query=_query_without(self.request.GET, "page"),
            bulk_actions=_bulk_actions_for(user),
            # The filter's tag options, grouped by tag group: no second query.
            bulk_tag_groups=form.fields["tags_all"].widget.choices,
            bulk_staff=Staff.objects.filter(status=Staff.Status.ACTIVE).order_by("name"),
            export_formats=EXPORT_FORMATS,
            thresholds=customer_type_thresholds(),
            active_nav="customers",
        )
        return context


def _bulk_actions_for(user) -> list[tuple[str, str]]:
    if can_write(user):
        return BulkAction.choices
    return [(BulkAction.EXPORT.value, BulkAction.EXPORT.label)]


def _int_list(values) -> list[int]:
    ids = []
    for value in values:
        for part in str(value).split(","):
            if part.strip().isdigit():
                ids.append(int(part))
    return ids


class ContactBulkView(LoginRequiredMixin, View):
    """Apply a bulk action to the chosen rows or to everyone the filters match.

    Not RoleRequiredMixin: analysts may post here to export; the service refuses them
    anything else.
    """

    http_method_names = ["post"]

    def post(self, request):
        user = request.user
        query = request.POST.get("query", "")
        action = request.POST.get("action", "")
        try:
            if request.POST.get("scope") == "all":
                filters = contact_filters_parse(QueryDict(query), strict=False)
                contact_ids = list(
                    contacts_filtered(user=user, filters=filters).values_list("pk", flat=True)
                )
            else:
                contact_ids = _int_list(request.POST.getlist("ids"))
            staff = request.POST.get("staff", "")
            result = contacts_bulk_act(
                user=user,
                action=action,
                contact_ids=contact_ids,
                tag_ids=_int_list(request.POST.getlist("tags")),
                staff_id=int(staff) if staff.isdigit() else None,
                fmt=request.POST.get("format", "csv"),
            )
        except ContactFilterError as exc:
            messages.error(request, _("The filters are not valid: %(errors)s") % {"errors": exc})
            return redirect(f"{reverse('contacts:list')}?{query}")
        except RemarkError as exc:
            messages.error(request, f"{_('Bulk action')}: {exc}")
            return redirect(f"{reverse('contacts:list')}?{query}")
        return render(
            request,
            "contacts/bulk_result.html",
            {
                "result": result,
                "job_url": _job_url(result.job),
                "job_status_url": _job_url(result.job, name="io:job-json"),
                "action_label": BulkAction(action).label,
                "failures": result.failures(),
                "back_query": query,
                "active_nav": "customers",
            },
        )


def _job_url(job, *, name: str = "io:job") -> str:
    """Where a job (an export, tagging many) is followed on the import/export pages, or
    its status polled (name="io:job-json"), if they are wired."""
    if job is None:
        return ""
    try:
        return reverse(name, args=[job.pk])
    except NoReverseMatch:
        return ""


class ContactDetailView(RoleRequiredMixin, TemplateView):
    """The contact page (客户 360): everything known about one customer, and their timeline."""

    template_name = "contacts/contact_detail.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        try:
            profile = contact_profile(user=self.request.user, contact_id=kwargs["pk"])
        except Contact.DoesNotExist:
            raise Http404(_("No such customer.")) from None
        timeline = Paginator(contact_timeline(contact_id=profile.contact.pk), TIMELINE_PAGE_SIZE)
        timeline_page = timeline.get_page(self.request.GET.get("timeline_page"))
        events = list(timeline_page.object_list)
        timeline_details(events)
        context.update(
            profile=profile,
            contact=profile.contact,
            timeline_page=timeline_page,
            events=events,
            note_kinds=ContactNote.Kind.choices,
            can_write=can_write(self.request.user),
            active_nav="customers",
        )
        return context


def _visible_contact_or_404(request, pk: int) -> Contact:
    return get_object_or_404(contacts_visible_to(request.user), pk=pk)


class ContactNoteAddView(RoleRequiredMixin, View):
    http_method_names = ["post"]

    def post(self, request, pk: int):
        contact = _visible_contact_or_404(request, pk)
        try:
            contact_note_add(
                user=request.user,
                contact=contact,
                kind=request.POST.get("kind", ""),
                text=request.POST.get("text", ""),
            )
        except RemarkError as exc:
            messages.error(request, f"{_('Remark not saved')}: {exc}")
        else:
            messages.success(request, _("Remark saved."))
        return redirect(reverse("contacts:detail", args=[contact.pk]) + "#remarks")


class ContactNoteEditView(RoleRequiredMixin, View):
    http_method_names = ["post"]

    def post(self, request, pk: int, note_pk: int):
        contact = _visible_contact_or_404(request, pk)
        note = get_object_or_404(ContactNote, pk=note_pk, contact=contact)
        try:
            contact_note_edit(
                user=request.user,
                note=note,
                kind=request.POST.get("kind", note.kind),
                text=request.POST.get("text", ""),
            )
        except RemarkError as exc:
            messages.error(request, f"{_('Remark not saved')}: {exc}")
        else:
            messages.success(request, _("Remark saved."))
        return redirect(reverse("contacts:detail", args=[contact.pk]) + "#remarks")
