"""The settings page's API tokens and the browsable API docs: who gets in, what a token does."""

import re

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client
from rest_framework.authtoken.models import Token

from scrm.models import Role, User
from tests.factories import GroupFactory, StaffFactory


@pytest.fixture
def operator(db) -> User:
    user = User.objects.create_user("xiaowang", role=Role.OPERATOR)
    GroupFactory(name="我的群", owner=StaffFactory(name="小王", user=user))
    return user


@pytest.fixture
def other_operator(db) -> User:
    return User.objects.create_user("xiaozhang", role=Role.OPERATOR)


@pytest.fixture
def manager(db) -> User:
    return User.objects.create_user("boss", role=Role.ADMIN)


@pytest.fixture
def analyst(db) -> User:
    return User.objects.create_user("laoli", role=Role.ANALYST)


def login(user: User, **client_options) -> Client:
    client = Client(**client_options)
    client.force_login(user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"  # the assertions read English
    return client


def api_status(key: str, path: str = "/api/groups/", method: str = "get") -> int:
    """The status a program gets calling the API with only this token (no session)."""
    return getattr(Client(), method)(path, HTTP_AUTHORIZATION=f"Token {key}").status_code


def create_token(client: Client) -> str:
    """Create (or regenerate) the token through the page; return the key shown once."""
    page = client.post("/settings/token/", follow=True).content.decode()
    match = re.search(r'id="new-token" type="text" readonly value="([0-9a-f]{40})"', page)
    assert match, "the new token was not shown in full after creating it"
    return match.group(1)


# --- the API docs ----------------------------------------------------------------------------


def test_the_api_docs_and_schema_need_a_login(client, db):
    response = client.get("/api/docs/")

    assert response.status_code == 302
    assert response.url == "/login/?next=/api/docs/"
    assert client.get("/api/schema/").status_code in (401, 403)


def test_the_api_docs_load_swagger_ui_from_our_own_static_files_only(operator):
    response = login(operator).get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "SwaggerUIBundle" in page
    assert '"/api/schema/"' in page
    assert "http://" not in page and "https://" not in page and "cdn" not in page.lower()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len(assets) >= 3  # the bundle, the preset, the stylesheet (and the icon)
    static_prefix = "/" + settings.STATIC_URL.lstrip("/")
    for url in assets:
        assert url.startswith(static_prefix), f"{url} is not one of our static files"
        assert finders.find(url.removeprefix(static_prefix)), f"{url} is not in our static files"


def test_the_schema_still_validates_without_warnings(db, tmp_path):
    schema = tmp_path / "schema.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(schema))

    assert "/api/groups/" in schema.read_text()


def test_the_settings_page_is_in_the_navigation_and_links_the_docs(operator):
    page = login(operator).get("/settings/").content.decode()

    assert '<a href="/settings/" aria-current="page">Settings</a>' in page
    assert '<a href="/api/docs/">Open the API docs</a>' in page


# --- tokens ----------------------------------------------------------------------------------


def test_the_settings_page_needs_a_login(client, db):
    for path in ("/settings/", "/settings/token/", "/settings/token/1/revoke/"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.url.startswith("/login/?next=")
    assert client.post("/settings/token/").status_code == 302
    assert not Token.objects.exists()


def test_a_user_creates_a_token_sees_it_once_and_calls_the_api_with_it(operator):
    client = login(operator)
    assert "You have no API token." in client.get("/settings/").content.decode()

    key = create_token(client)

    assert Token.objects.get(user=operator).key == key
    response = Client().get("/api/groups/", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 200
    assert [group["name"] for group in response.json()["results"]] == ["我的群"]
    again = client.get("/settings/").content.decode()
    assert key not in again
    assert f"<code>{key[:4]}••••••••••••</code>" in again


def test_regenerating_asks_first_then_the_old_key_stops_working(operator):
    client = login(operator)
    old_key = create_token(client)

    confirm = client.get("/settings/token/").content.decode()
    assert "The current token stops working at once" in confirm
    assert Token.objects.get(user=operator).key == old_key  # asking changed nothing

    new_key = create_token(client)

    assert new_key != old_key
    assert api_status(old_key) in (401, 403)
    assert api_status(new_key) == 200


def test_a_user_revokes_their_token_and_the_api_refuses_it(operator):
    client = login(operator)
    key = create_token(client)
    revoke = f"/settings/token/{operator.pk}/revoke/"
    assert "Revoke your API token?" in client.get(revoke).content.decode()

    page = client.post(revoke, follow=True).content.decode()

    assert "API token revoked." in page
    assert "You have no API token." in page
    assert not Token.objects.filter(user=operator).exists()
    assert api_status(key) in (401, 403)


def test_an_operator_cannot_revoke_another_users_token(operator, other_operator):
    other_key = Token.objects.create(user=other_operator).key
    client = login(operator)
    revoke = f"/settings/token/{other_operator.pk}/revoke/"

    assert client.get(revoke).status_code == 403
    assert client.post(revoke).status_code == 403

    assert Token.objects.filter(key=other_key).exists()
    assert api_status(other_key) == 200
    assert "Users with API tokens" not in client.get("/settings/").content.decode()


def test_a_manager_sees_everyones_tokens_and_revokes_one(manager, operator, other_operator):
    operator_key = Token.objects.create(user=operator).key
    Token.objects.create(user=other_operator)
    client = login(manager)

    page = client.get("/settings/").content.decode()
    assert "Users with API tokens" in page
    assert "xiaowang" in page and "xiaozhang" in page
    assert operator_key not in page  # masked for managers too
    confirm = client.get(f"/settings/token/{operator.pk}/revoke/").content.decode()
    assert "Revoke the API token of xiaowang?" in confirm

    response = client.post(f"/settings/token/{operator.pk}/revoke/")

    assert response.status_code == 302
    assert api_status(operator_key) in (401, 403)
    assert list(Token.objects.values_list("user__username", flat=True)) == ["xiaozhang"]


def test_an_analyst_may_hold_a_token_that_only_reads(analyst):
    key = create_token(login(analyst))

    assert api_status(key) == 200
    assert api_status(key, method="post") == 403


def test_token_actions_refuse_a_post_without_the_csrf_token(operator):
    client = login(operator, enforce_csrf_checks=True)

    assert client.post("/settings/token/").status_code == 403
    assert not Token.objects.filter(user=operator).exists()
