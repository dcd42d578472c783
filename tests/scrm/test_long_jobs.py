"""Long upkeep as background jobs: a manager starts a full sync from WeCom or a rebuild of the
figures on the import/export page, and follows it on the job page like an import."""

from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from analytics.models import ContactActivity, DailyRollup
from analytics.rollups import FIGURES
from contacts.models import Contact, ContactTag, Follow, Staff
from groups.models import Group, GroupMembership
from groups.sync import full_sync
from scrm.account import api_token_issue
from scrm.jobs import job_progress
from scrm.models import Job, Role, User
from tests.analytics.history import build_recorded_history
from tests.conftest import wait_for

PASSWORD = "plum-blossom-2026"
T = 1_760_000_000


def follows(i: int) -> list[dict]:
    """alice follows all 12 customers and tagged four of them 茶; bob follows two."""
    alice = {"userid": "alice", "createtime": T + i, "tags": ["t1"] if i < 4 else []}
    bob = {"userid": "bob", "createtime": T + 100 + i, "tags": []}
    return [alice, bob] if i < 2 else [alice]


WORLD = {
    "staff": [{"userid": "alice", "name": "Alice"}, {"userid": "bob", "name": "Bob"}],
    "contacts": [
        {"external_userid": f"wm{i:02d}", "name": f"客户{i}", "follow_users": follows(i)}
        for i in range(12)
    ],
    "tag_groups": [{"group_id": "g1", "group_name": "兴趣", "tags": [{"id": "t1", "name": "茶"}]}],
    "groups": [
        {
            "chat_id": f"wr{g}",
            "name": f"福利群{g}",
            "owner": "alice",
            "members": [{"userid": "alice", "type": 1, "join_time": T, "join_scene": 0}]
            + [
                {"userid": f"wm{i:02d}", "type": 2, "join_time": T + 1000 + i, "join_scene": 3}
                for i in range(g * 5, g * 5 + 6)
            ],
        }
        for g in range(2)
    ],
}
SYNC_URL = "/io/upkeep/wecom_sync/"
REBUILD_URL = "/io/upkeep/rollups_rebuild/"


def user(username: str, role: Role) -> User:
    return User.objects.create_user(username, password=PASSWORD, role=role)


def logged_in(client, who: User):
    assert client.login(username=who.username, password=PASSWORD)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"  # the assertions read English
    return client


def finished(job_id: int) -> Job | None:
    """the job to finish"""
    return Job.objects.filter(pk=job_id, status__in=["done", "failed"]).first()


def started_job(response) -> Job:
    assert response.status_code == 302
    job = Job.objects.get(pk=int(response.url.rstrip("/").rsplit("/", 1)[1]))
    assert response.url == f"/io/jobs/{job.pk}/"
    return job


# --- full sync ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_manager_starts_a_full_sync_that_brings_wecom_in_and_its_page_shows_the_counts(
    client, celery_worker_thread, fake_wecom
):
    fake_wecom.load_world(WORLD)
    logged_in(client, user("boss", Role.ADMIN))

    job = started_job(client.post(SYNC_URL))

    job = wait_for(lambda: finished(job.pk), timeout=60)
    assert (job.status, job.error, job.kind) == ("done", "", "wecom_sync")
    assert job.result["follows"] == 14 and job.result["follows_added"] == 14
    assert job.result["groups"] == 2 and job.result["groups_changed"] == 2
    assert set(Staff.objects.values_list("userid", flat=True)) == {"alice", "bob"}
    assert Contact.objects.count() == 12 and Follow.objects.count() == 14
    assert ContactTag.objects.filter(tag__name="茶").count() == 4
    assert set(Group.objects.values_list("chat_id", flat=True)) == {"wr0", "wr1"}
    assert GroupMembership.objects.filter(contact__isnull=False, left_at__isnull=True).count() == 12
    page = client.get(f"/io/jobs/{job.pk}/").content.decode()
    assert "Full sync from WeCom" in page
    assert 'value="100"' in page and "http-equiv" not in page
    assert '<th scope="row">Customer relations added</th><td class="num">14</td>' in page
    assert '<th scope="row">Groups in WeCom</th><td class="num">2</td>' in page
    listing = client.get("/io/jobs/").content.decode()
    assert f'href="/io/jobs/{job.pk}/"' in listing  # to come back to later
    home = client.get("/io/").content.decode()
    assert f'<a href="/io/jobs/{job.pk}/">#{job.pk}</a>' in home  # the latest sync


@pytest.mark.django_db(transaction=True)
def test_while_the_sync_runs_the_job_page_shows_the_phase_and_how_far_it_is(client, fake_wecom):
    """The job page read in the middle of the groups phase, as a manager who left and came back
    would see it."""
    fake_wecom.load_world(WORLD)
    manager = user("boss", Role.ADMIN)
    logged_in(client, manager)
    job = Job.objects.create(kind="wecom_sync", created_by=manager, status=Job.Status.RUNNING)
    seen = {}

    with job_progress(job.pk) as progress:

        def watch(done, total=None, *, phase=None):
            progress(done, total, phase=phase)
            if phase == "wecom_groups" and done == 1:
                seen["page"] = client.get(f"/io/jobs/{job.pk}/").content.decode()
                seen["json"] = client.get(f"/io/jobs/{job.pk}.json").json()

        full_sync(progress=watch)

    assert (seen["json"]["phase"], seen["json"]["done"], seen["json"]["total"]) == (
        "wecom_groups",
        1,
        2,
    )
    assert "Reading groups and members from WeCom" in seen["page"]
    assert '<p id="job-count" class="muted">1 of 2</p>' in seen["page"]
    assert 'id="job-bar" max="100" value="50"' in seen["page"]
    assert '<meta http-equiv="refresh"' in seen["page"]  # it keeps itself up to date


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_wecom_ends_the_sync_job_failed_with_one_readable_line(
    client, celery_worker_thread, fake_wecom
):
    fake_wecom.stop()  # WeCom is down: every call is refused
    logged_in(client, user("boss", Role.ADMIN))

    job = started_job(client.post(SYNC_URL))

    job = wait_for(lambda: finished(job.pk), timeout=60)
    assert job.status == "failed"
    assert job.error == (
        "WeCom could not be reached. "
        "What was synced so far is kept; start the sync again to finish."
    )
    page = client.get(f"/io/jobs/{job.pk}/").content.decode()
    assert f'<p class="alert alert-error" role="alert">{job.error}</p>' in page
    assert Contact.objects.count() == 0


# --- rebuild -----------------------------------------------------------------------------------


def rollup_rows() -> list[tuple]:
    return list(DailyRollup.objects.order_by("slice", "day").values_list("slice", "day", *FIGURES))


def activity_rows() -> list[tuple]:
    return list(
        ContactActivity.objects.order_by("contact_id").values_list(
            "contact_id", "member", "lefts", "blips", "spoke", "bought"
        )
    )


@pytest.mark.django_db(transaction=True)
def test_a_rebuild_job_gives_the_rows_the_rebuild_command_gives(client, celery_worker_thread):
    build_recorded_history()  # October and November 2026, within the last 90 days
    logged_in(client, user("boss", Role.ADMIN))

    job = started_job(client.post(REBUILD_URL))

    job = wait_for(lambda: finished(job.pk), timeout=120)
    assert (job.status, job.error, job.kind) == ("done", "", "rollups_rebuild")
    assert job.result["days"] == 90
    by_job, activity_by_job = rollup_rows(), activity_rows()
    assert len(by_job) > 90 and any(row[2] > 0 for row in by_job)  # members at the end of a day
    assert job.result["customers"] == len(activity_by_job) > 0
    page = client.get(f"/io/jobs/{job.pk}/").content.decode()
    assert '<th scope="row">Days recomputed</th><td class="num">90</td>' in page

    DailyRollup.objects.all().delete()
    ContactActivity.objects.all().delete()
    call_command("rollups_rebuild", stdout=StringIO())

    assert rollup_rows() == by_job
    assert activity_rows() == activity_by_job


# --- who may start one, and only one at a time --------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.OPERATOR, Role.ANALYST])
def test_operators_and_analysts_may_not_start_a_sync_or_a_rebuild_nor_see_the_buttons(client, role):
    logged_in(client, user("someone", role))

    assert client.post(SYNC_URL).status_code == 403
    assert client.post(REBUILD_URL).status_code == 403
    assert Job.objects.count() == 0
    home = client.get("/io/").content.decode()
    assert "/io/upkeep/" not in home


@pytest.mark.django_db
def test_a_manager_sees_both_buttons_on_the_import_and_export_page(client):
    logged_in(client, user("boss", Role.ADMIN))

    home = client.get("/io/").content.decode()

    assert f'action="{SYNC_URL}"' in home and f'action="{REBUILD_URL}"' in home


@pytest.mark.django_db
@pytest.mark.parametrize("url", [SYNC_URL, REBUILD_URL])
def test_starting_one_while_the_same_kind_is_under_way_shows_that_one_instead(client, url):
    logged_in(client, user("boss", Role.ADMIN))
    first = started_job(client.post(url))

    again = client.post(url, follow=True)  # still queued

    assert again.redirect_chain == [(f"/io/jobs/{first.pk}/", 302)]
    assert "already under way" in again.content.decode()
    Job.objects.filter(pk=first.pk).update(status=Job.Status.RUNNING)
    other_manager = logged_in(client.__class__(), user("boss2", Role.ADMIN))
    assert started_job(other_manager.post(url)) == first  # running: still that one
    assert Job.objects.count() == 1

    Job.objects.filter(pk=first.pk).update(status=Job.Status.DONE)
    assert started_job(client.post(url)) != first  # finished: a new one starts
    assert Job.objects.count() == 2


@pytest.mark.django_db
def test_a_sync_whose_worker_vanished_long_ago_is_marked_stopped_and_no_longer_blocks(client):
    manager = user("boss", Role.ADMIN)
    logged_in(client, manager)
    stuck = Job.objects.create(kind="wecom_sync", created_by=manager, status=Job.Status.RUNNING)
    Job.objects.filter(pk=stuck.pk).update(created_at=timezone.now() - timedelta(hours=3))

    job = started_job(client.post(SYNC_URL))

    assert job != stuck
    stuck.refresh_from_db()
    assert stuck.status == "failed" and "start it again" in stuck.error


# --- the same from a program, with an API token ----------------------------------------------


def api_post(who: User, url: str):
    token = api_token_issue(user=who)
    return Client().post(url, HTTP_AUTHORIZATION=f"Token {token.key}")


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["wecom_sync", "rollups_rebuild"])
def test_a_program_with_a_managers_token_starts_one_and_is_told_of_one_under_way(kind):
    manager = user("boss", Role.ADMIN)
    url = f"/io/api/upkeep/{kind}"

    started = api_post(manager, url)
    again = api_post(manager, url)

    assert started.status_code == 202
    job = Job.objects.get()
    assert started.json()["id"] == job.pk and started.json()["kind"] == kind
    assert started.json()["status"] == "queued" and started.json()["finished"] is False
    assert started.json()["page_url"].endswith(f"/io/jobs/{job.pk}/")
    assert (again.status_code, again.json()["id"]) == (200, job.pk)
    assert Job.objects.count() == 1
    progress = Client().get(
        f"/io/api/jobs/{job.pk}", HTTP_AUTHORIZATION=f"Token {api_token_issue(user=manager).key}"
    )
    assert progress.status_code == 200 and progress.json()["phase"] == "queued"


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.OPERATOR, Role.ANALYST])
def test_a_program_with_anyone_elses_token_starts_nothing(role):
    someone = user("someone", role)

    assert api_post(someone, "/io/api/upkeep/wecom_sync").status_code == 403
    assert api_post(someone, "/io/api/upkeep/rollups_rebuild").status_code == 403
    assert Client().post("/io/api/upkeep/wecom_sync").status_code in (401, 403)
    assert api_post(user("boss", Role.ADMIN), "/io/api/upkeep/reindex").status_code == 404
    assert Job.objects.count() == 0
