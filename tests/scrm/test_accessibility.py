"""Accessibility basics on the main pages (issue 7, point 8): every form control has a name a
screen reader can read, groups of checkboxes and radios sit in a fieldset with a legend, the
tab order is the page's own, and every page starts with a "skip to content" link.

A manager opens each page with a little data behind it; the HTML is read with html.parser.
"""

from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Campaign
from contacts.models import ContactTag, Tag, TagGroup
from scrm.models import Role, User
from sop.models import ContentItem, Plan, Step
from tests.factories import ContactFactory, GroupFactory, StaffFactory

pytestmark = pytest.mark.django_db

# Inputs that are buttons or carry no visible value need no label.
UNLABELLED_TYPES = {"hidden", "submit", "button", "reset", "image"}
CONTROLS = {"input", "select", "textarea"}


@dataclass
class Fieldset:
    has_legend: bool = False


@dataclass
class Control:
    tag: str
    attrs: dict
    in_label: bool
    fieldset: Fieldset | None
    in_table: bool


@dataclass
class PageReport(HTMLParser):
    """What the page says about its controls, labels, fieldsets and tab order."""

    controls: list = field(default_factory=list)
    label_targets: set = field(default_factory=set)
    positive_tabindex: list = field(default_factory=list)
    links: list = field(default_factory=list)
    ids: set = field(default_factory=set)
    duplicate_ids: set = field(default_factory=set)
    label_depth: int = 0
    table_depth: int = 0
    fieldsets: list = field(default_factory=list)

    def __post_init__(self):
        super().__init__()

    def handle_starttag(self, tag, attrs):
        attrs = {name: value or "" for name, value in attrs}
        if "id" in attrs:
            if attrs["id"] in self.ids:
                self.duplicate_ids.add(attrs["id"])
            self.ids.add(attrs["id"])
        tabindex = attrs.get("tabindex", "").strip()
        if tabindex.lstrip("-").isdigit() and int(tabindex) > 0:
            self.positive_tabindex.append((tag, attrs))
        if tag == "a":
            self.links.append(attrs)
        elif tag == "label":
            self.label_depth += 1
            if attrs.get("for"):
                self.label_targets.add(attrs["for"])
        elif tag == "table":
            self.table_depth += 1
        elif tag == "fieldset":
            self.fieldsets.append(Fieldset())
        elif tag == "legend" and self.fieldsets:
            self.fieldsets[-1].has_legend = True
        elif tag in CONTROLS:
            self.controls.append(
                Control(
                    tag,
                    attrs,
                    in_label=self.label_depth > 0,
                    fieldset=self.fieldsets[-1] if self.fieldsets else None,
                    in_table=self.table_depth > 0,
                )
            )

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        if tag == "label" and self.label_depth:
            self.label_depth -= 1
        elif tag == "table" and self.table_depth:
            self.table_depth -= 1
        elif tag == "fieldset" and self.fieldsets:
            self.fieldsets.pop()

    # --- findings ----------------------------------------------------------------------------

    def unlabelled(self) -> list[str]:
        missing = []
        for control in self.controls:
            attrs = control.attrs
            if control.tag == "input" and attrs.get("type", "text").lower() in UNLABELLED_TYPES:
                continue
            named = (
                control.in_label
                or attrs.get("id") in self.label_targets
                or attrs.get("aria-label", "").strip()
                or all(ref in self.ids for ref in attrs.get("aria-labelledby", "").split())
                and attrs.get("aria-labelledby", "").strip()
            )
            if not named:
                missing.append(f"<{control.tag} name={attrs.get('name')!r} id={attrs.get('id')!r}>")
        return missing

    def loose_choice_groups(self) -> list[str]:
        """Names shared by several checkboxes or radios that are not all in a fieldset with a
        legend. A checkbox a table row (picking that row) is named by its own aria-label and
        its column, not by a fieldset around the table."""
        by_name: dict[str, list[Control]] = {}
        for control in self.controls:
            if control.in_table:
                continue
            if control.tag == "input" and control.attrs.get("type") in {"checkbox", "radio"}:
                by_name.setdefault(control.attrs.get("name", ""), []).append(control)
        return [
            name
            for name, group in by_name.items()
            if len(group) > 1
            and not all(control.fieldset and control.fieldset.has_legend for control in group)
        ]


def read(client: Client, url: str) -> PageReport:
    response = client.get(url)
    assert response.status_code == 200, f"GET {url} answered {response.status_code}"
    report = PageReport()
    report.feed(response.content.decode())
    report.close()
    return report


@pytest.fixture
def client():
    client = Client()
    client.force_login(User.objects.create_user("manager", role=Role.ADMIN))
    return client


@pytest.fixture
def data():
    """One of each thing the pages show: a tagged customer, a group, a plan with a step,
    a content item and a campaign."""
    tag_group = TagGroup.objects.create(name="兴趣")
    tags = [Tag.objects.create(group=tag_group, name=name) for name in ("咖啡", "茶", "甜点")]
    contact = ContactFactory()
    ContactTag.objects.create(contact=contact, tag=tags[0])
    group = GroupFactory()
    content = ContentItem.objects.create(
        title="早安", purpose=ContentItem.Purpose.ACTIVATION, text="早安"
    )
    plan = Plan.objects.create(name="新人七天", kind=Plan.Kind.GROUP, staff=StaffFactory())
    Step.objects.create(plan=plan, content=content, position=1)
    now = timezone.now()
    campaign = Campaign.objects.create(
        name="拉新",
        type=Campaign.Type.INVITE_TASK,
        state=Campaign.State.DRAFT,
        starts_at=now,
        ends_at=now + timedelta(days=7),
        staff=StaffFactory(),
    )
    return {"tags": tags, "contact": contact, "group": group, "plan": plan, "campaign": campaign}


def main_pages(data) -> list[str]:
    tags = data["tags"]
    # The first filter finds the customer; the second, all three tag rules at once, finds none.
    matching = f"?tags_all={tags[0].pk}"
    nobody = f"?tags_all={tags[0].pk}&tags_any={tags[1].pk}&tags_none={tags[2].pk}"
    return [
        reverse("contacts:list"),
        reverse("contacts:list") + matching,
        reverse("contacts:list") + nobody,
        reverse("contacts:detail", args=[data["contact"].pk]),
        reverse("groups:list"),
        reverse("groups:detail", args=[data["group"].pk]),
        reverse("groups:edit", args=[data["group"].pk]),
        reverse("sop:plans"),
        reverse("sop:plan-new"),
        reverse("sop:plan-edit", args=[data["plan"].pk]),
        reverse("sop:step-new", args=[data["plan"].pk]),
        reverse("sop:content"),
        reverse("sop:content-new"),
        reverse("campaign_admin:list"),
        reverse("campaign_admin:new"),
        reverse("campaign_admin:detail", args=[data["campaign"].pk]),
        reverse("analytics:overview"),
        reverse("analytics:groups"),
        reverse("settings"),
        reverse("io:home"),
    ]


def test_every_form_control_on_the_main_pages_has_a_label(client, data):
    problems = {url: read(client, url).unlabelled() for url in main_pages(data)}
    assert {url: found for url, found in problems.items() if found} == {}


def test_checkbox_and_radio_groups_sit_in_fieldsets_with_legends(client, data):
    problems = {url: read(client, url).loose_choice_groups() for url in main_pages(data)}
    assert {url: found for url, found in problems.items() if found} == {}


def test_no_page_repeats_an_id(client, data):
    # A repeated id sends a label, or an error linked with aria-describedby, to the wrong field.
    problems = {url: read(client, url).duplicate_ids for url in main_pages(data)}
    assert {url: found for url, found in problems.items() if found} == {}


def test_no_page_reorders_the_tab_sequence(client, data):
    problems = {url: read(client, url).positive_tabindex for url in main_pages(data)}
    assert {url: found for url, found in problems.items() if found} == {}


def test_every_page_starts_with_a_skip_link_to_the_content(client, data):
    for url in main_pages(data):
        report = read(client, url)
        assert report.links and report.links[0].get("href") == "#main", url
        assert "main" in report.ids, url


def test_login_page_has_the_skip_link_and_labelled_fields():
    report = read(Client(), reverse("login"))
    assert report.links[0].get("href") == "#main"
    assert report.unlabelled() == []


@pytest.mark.parametrize(
    ("url_name", "says"),
    [
        ("contacts:list", "No customers match"),
        ("groups:list", "No groups yet"),
        ("sop:plans", "No plans here"),
        ("sop:content", "No content here"),
        ("campaign_admin:list", "No campaigns here"),
        ("io:home", "No imports or exports yet."),
        ("io:jobs", "No imports or exports yet."),
        ("analytics:groups", "No data for this period."),
    ],
)
def test_empty_list_pages_say_there_is_nothing(client, url_name, says):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"  # the assertions read English
    response = client.get(reverse(url_name))
    assert response.status_code == 200
    assert says in response.content.decode()


def test_a_form_error_sits_by_its_field_and_the_field_points_to_it(client):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    response = client.post(reverse("sop:content-new"), {"title": ""})
    assert response.status_code == 200
    report = PageReport()
    report.feed(response.content.decode())
    title = next(c for c in report.controls if c.attrs.get("name") == "title")
    assert title.attrs.get("aria-invalid") == "true"
    assert "id_title_error" in title.attrs.get("aria-describedby", "").split()
    assert "id_title_error" in report.ids
