"""Error pages (404, 403, the expired form, 400, 500): in the product's layout, Chinese first,
with a way back to the workbench. pytest-django runs with DEBUG off, so these are the pages
users get, not Django's debug pages."""

import re

import pytest
from django.contrib.auth import SESSION_KEY
from django.template import loader
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from contacts.models import Follow
from scrm.models import Role, User
from tests.factories import ContactFactory, GroupFactory, StaffFactory

pytestmark = pytest.mark.django_db


def heading(html: str) -> str:
    return re.search(r"<h1[^>]*>(.*?)</h1>", html, re.S).group(1).strip()


def has_way_back(html: str) -> bool:
    return bool(re.search(r'<a [^>]*href="/"[^>]*data-back="workbench"', html))


def in_layout(html: str) -> bool:
    """The product's own page: its stylesheet, its skip link and its main region."""
    return (
        'href="/static/css/scrm.css"' in html
        and 'href="#main"' in html
        and '<main id="main"' in html
        and "{#" not in html  # no template comment shown as text
    )


@pytest.fixture
def operator() -> User:
    return User.objects.create_user("xiaowang", role=Role.OPERATOR)


@pytest.fixture
def operator_client(operator) -> Client:
    client = Client()
    client.force_login(operator)
    return client


def test_a_missing_customer_or_group_shows_the_chinese_404_page_with_the_way_back(
    operator_client,
):
    for url in (reverse("contacts:detail", args=[999999]), reverse("groups:detail", args=[9999])):
        response = operator_client.get(url)
        html = response.content.decode()

        assert response.status_code == 404, url
        assert in_layout(html) and has_way_back(html), url
        assert '<html lang="zh-hans">' in html
        # The navigation of a logged-in user, and a heading in Chinese, not Django's "Not Found".
        assert 'href="/contacts/"' in html and "工作台" in html
        assert not re.search(r"[A-Za-z]", heading(html)), heading(html)
        assert "Not Found" not in html


def test_an_operator_opening_another_operators_customer_or_group_gets_the_same_404(
    operator, operator_client
):
    someone_else = StaffFactory()
    customer = ContactFactory()
    Follow.objects.create(contact=customer, staff=someone_else, added_at=timezone.now())
    group = GroupFactory(owner=someone_else)

    for url in (
        reverse("contacts:detail", args=[customer.pk]),
        reverse("groups:detail", args=[group.pk]),
    ):
        response = operator_client.get(url)
        html = response.content.decode()
        assert response.status_code == 404, url
        assert in_layout(html) and has_way_back(html), url
        assert customer.name not in html and group.name not in html


def test_an_operator_on_a_managers_page_gets_the_403_page_in_the_layout(operator_client):
    response = operator_client.get(reverse("groups:handovers"))
    html = response.content.decode()

    assert response.status_code == 403
    assert in_layout(html) and has_way_back(html)
    assert 'href="/contacts/"' in html  # the logged-in navigation is still there
    # The exception's own words are for the log, not the page.
    assert "Leaver transfer is for managers." not in html


def test_a_form_sent_without_its_csrf_token_shows_the_expired_form_page_and_changes_nothing(
    operator,
):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)

    response = client.post(reverse("logout"))
    html = response.content.decode()

    assert response.status_code == 403
    assert in_layout(html) and has_way_back(html)
    assert "CSRF verification failed" not in html  # not Django's bare English page
    assert client.session.get(SESSION_KEY) == str(operator.pk)  # still logged in


@pytest.mark.parametrize("template_name", ["500.html", "400.html"])
def test_the_500_and_400_pages_render_with_nothing_in_the_context(template_name):
    # Django renders 500.html with an empty context and no request: nothing about the user.
    with translation.override("zh-hans"):
        html = loader.get_template(template_name).render()

    assert in_layout(html) and has_way_back(html)
    assert '<html lang="zh-hans">' in html
    assert heading(html)
    assert 'action="/logout/"' not in html and "csrfmiddlewaretoken" not in html
