"""Tagging many customers at once: a background job that tags them in WeCom and here."""

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone
from rest_framework.test import APIClient

from analytics.models import Event, EventType
from contacts import io_tasks
from contacts.io_tasks import contacts_tag_run
from contacts.models import ContactTag, Follow, Tag, TagGroup
from contacts.remarks import BULK_TAG_IN_REQUEST, BULK_TAG_MAX
from contacts.tags import contacts_tag_job_start
from groups.selectors import wecom_world
from scrm.jobs import job_create
from scrm.models import Job, Role, User
from tests.conftest import wait_for
from tests.factories import ContactFactory, StaffFactory
from wecom import gateway

PASSWORD = "plum-blossom-2026"
MANY = 250  # above BULK_TAG_IN_REQUEST: a job


@pytest.fixture
def fast_wecom(fake_wecom, settings):
    """The fake WeCom, with a rate limit that lets 250 calls pass in about a second."""
    settings.WECOM_RATE_PER_SECOND = 300
    gateway.client.cache_clear()
    yield fake_wecom
    gateway.client.cache_clear()


@pytest.fixture
def manager(transactional_db) -> User:
    return User.objects.create_user("boss", password=PASSWORD, role=Role.ADMIN)


@pytest.fixture
def operator(transactional_db) -> User:
    user = User.objects.create_user("xiaowang", password=PASSWORD, role=Role.OPERATOR)
    StaffFactory(userid="wang", name="小王", user=user)
    return user


@pytest.fixture
def tag(transactional_db) -> Tag:
    group = TagGroup.objects.create(name="兴趣", wecom_group_id="etGROUP1")
    return Tag.objects.create(group=group, name="护肤", wecom_tag_id="etTAG1")


@pytest.fixture
def customers(fast_wecom, tag) -> list:
    """250 customers of 张姐 (not 小王's), mirrored in the fake WeCom."""
    zhang = StaffFactory(userid="zhang", name="张姐")
    contacts = [ContactFactory(external_userid=f"wm-many-{n:03d}") for n in range(MANY)]
    Follow.objects.bulk_create(
        Follow(contact=c, staff=zhang, added_at=timezone.now()) for c in contacts
    )
    fast_wecom.load_world(wecom_world())
    return contacts


def api_client(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def tags_in_wecom(fake_wecom) -> dict[str, list[str]]:
    return {
        c["external_userid"]: [t for f in c["follow_users"] for t in f["tags"]]
        for c in fake_wecom.world_snapshot()["contacts"]
    }


def finished(job_id: int) -> Job | None:
    job = Job.objects.get(pk=job_id)
    return job if job.status in (Job.Status.DONE, Job.Status.FAILED) else None


def test_tagging_250_customers_runs_as_a_job_that_tags_all_of_them(
    celery_worker_thread, customers, tag, manager, fast_wecom
):
    """GIVEN 250 customers, one of them tagged already
    WHEN a manager tags them all through the API
    THEN a job tags every one, here and in WeCom, and shows 100% with its counts."""
    ContactTag.objects.create(contact=customers[0], tag=tag)
    api = api_client(manager)

    response = api.post(
        "/api/contacts/bulk/",
        {"action": "tag", "ids": [c.pk for c in customers], "tags": [tag.pk]},
        format="json",
    )

    answer = response.json()
    assert response.status_code == 200
    assert answer["queued"] == MANY and answer["done"] == 0 and answer["failed"] == []
    assert answer["job"]["kind"] == "contacts_tag"
    job = wait_for(lambda: finished(answer["job"]["id"]), timeout=60)
    status = api.get(f"/io/api/jobs/{job.pk}").json()
    assert status["status"] == "done" and status["percent"] == 100
    assert status["counts"] == {"requested": MANY, "done": MANY - 1, "unchanged": 1, "failed": 0}
    assert ContactTag.objects.filter(tag=tag).count() == MANY
    in_wecom = tags_in_wecom(fast_wecom)
    assert all(in_wecom[c.external_userid] == ["etTAG1"] for c in customers)
    assert Event.objects.filter(type=EventType.TAG_ADDED).count() == MANY - 1
    api.force_login(manager)
    page = api.get(f"/io/jobs/{job.pk}/")
    assert "客户批量打标签" in page.content.decode()  # the job page names the job in Chinese


def test_the_bulk_page_shows_the_tagging_jobs_progress_bar(
    celery_worker_thread, client, customers, tag, manager
):
    client.login(username="boss", password=PASSWORD)

    response = client.post(
        "/contacts/bulk/",
        {"ids": [c.pk for c in customers], "action": "tag", "tags": [tag.pk]},
    )

    page = response.content.decode()
    job = Job.objects.get(kind="contacts_tag")
    assert response.status_code == 200
    assert 'id="bulk-job-bar"' in page and f'id="bulk-queued">{MANY}<' in page
    assert f'data-status-url="/io/jobs/{job.pk}.json"' in page
    wait_for(lambda: finished(job.pk), timeout=60)
    assert client.get(f"/io/jobs/{job.pk}.json").json()["percent"] == 100
    assert ContactTag.objects.filter(tag=tag).count() == MANY


def test_up_to_the_threshold_tagging_is_done_within_the_request(customers, tag, manager):
    few = customers[:BULK_TAG_IN_REQUEST]

    answer = (
        api_client(manager)
        .post(
            "/api/contacts/bulk/",
            {"action": "tag", "ids": [c.pk for c in few], "tags": [tag.pk]},
            format="json",
        )
        .json()
    )

    assert answer["done"] == BULK_TAG_IN_REQUEST and answer["job"] is None
    assert ContactTag.objects.filter(tag=tag).count() == BULK_TAG_IN_REQUEST
    assert not Job.objects.exists()


def test_an_operator_bulk_tagging_customers_not_theirs_changes_nothing(
    customers, tag, operator, fast_wecom
):
    ids = [c.pk for c in customers]

    answer = (
        api_client(operator)
        .post("/api/contacts/bulk/", {"action": "tag", "ids": ids, "tags": [tag.pk]}, format="json")
        .json()
    )
    with pytest.raises(PermissionDenied):
        contacts_tag_job_start(user=operator, contact_ids=ids, tags=[tag])

    assert answer["job"] is None and answer["queued"] == 0 and answer["done"] == 0
    assert len(answer["failed"]) == MANY
    assert all(f["name"] == "" for f in answer["failed"])  # no names of others' customers
    assert not Job.objects.exists()
    assert not ContactTag.objects.exists()
    assert fast_wecom.calls("externalcontact/mark_tag") == []


def test_a_job_run_again_skips_the_customers_it_has_done(customers, tag, manager, fast_wecom):
    """A second delivery of the task, or a run after a crash, resumes after the last
    customer done: the first 100 cost no WeCom call the second time."""
    ids = [c.pk for c in customers]
    job = job_create(
        kind="contacts_tag",
        user=manager,
        params={"contact_ids": ids, "tag_ids": [tag.pk]},
        total=MANY,
    )
    Job.objects.filter(pk=job.pk).update(
        result={"done": 100, "unchanged": 0, "failed": 0, "resume": {"after": ids[99]}}
    )

    first = contacts_tag_run(job_id=job.pk)
    calls_after_first = len(fast_wecom.calls("externalcontact/mark_tag"))
    Job.objects.filter(pk=job.pk).update(status=Job.Status.QUEUED)  # delivered once more
    second = contacts_tag_run(job_id=job.pk)

    job.refresh_from_db()
    assert (first, second) == ("done", "done")
    assert calls_after_first == MANY - 100
    assert len(fast_wecom.calls("externalcontact/mark_tag")) == MANY - 100
    assert ContactTag.objects.filter(tag=tag).count() == MANY - 100
    assert job.result["done"] == MANY and job.percent == 100


def test_a_long_job_goes_on_in_fresh_runs_until_every_customer_is_done(
    celery_worker_thread, customers, tag, manager, monkeypatch
):
    monkeypatch.setattr(io_tasks, "TAG_SLICE_SECONDS", 0)  # one chunk a run

    answer = (
        api_client(manager)
        .post(
            "/api/contacts/bulk/",
            {"action": "untag", "ids": [c.pk for c in customers], "tags": [tag.pk]},
            format="json",
        )
        .json()
    )

    job = wait_for(lambda: finished(answer["job"]["id"]), timeout=60)
    assert job.status == Job.Status.DONE and job.kind == "contacts_untag"
    assert job.result["unchanged"] == MANY and job.result["failed"] == 0


def test_too_many_customers_to_tag_is_refused_naming_ids(tag, manager):
    response = api_client(manager).post(
        "/api/contacts/bulk/",
        {"action": "tag", "ids": list(range(1, BULK_TAG_MAX + 2)), "tags": [tag.pk]},
        format="json",
    )

    assert response.status_code == 400 and "ids" in response.json()
    assert not Job.objects.exists()
