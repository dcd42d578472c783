"""Benchmark: the SOP planner's daily pass and sending through the fake WeCom.

    make bench-sop                                       # 50,000 groups, 200,000 journeys
    make bench-sop BENCH_ARGS="--groups 2000 --contacts 8000"   # a quick check
    make bench-sop BENCH_ARGS="--send-with threads"     # message_send in a thread pool

Runs in its own database (scrm_bench_sop, created and dropped here) on the server the run
was started with, so demo data is untouched. Loads by COPY: staff, groups (owners spread at
random over the staff), contacts with one active follow each, and one journey enrolment per
contact triggered a week before the slot day. One active group plan has a daily step at
10:00 Shanghai; one active journey plan (contact added) has a step 7 days after the trigger
at 10:00; both content items have no variables, so deliveries batch by sender.

Then, after VACUUM ANALYZE, it times `sop.planner.plan_due` one minute after the slot
(every group and every enrolment is due: the issue's target is under 10 s) and again for the
same minute (plans nothing), `sop.sending.dispatch_due` (deliveries into mass messages), and
sending every mass message through the fake WeCom with the rate limiter set high: by real
Celery workers (subprocesses on a queue of their own) or, with --send-with threads, by a
thread pool calling `sop.sending.message_send`. It checks that every delivery ended `sent`
once, that WeCom holds exactly the messages we created and that no receiver got two.
"""

import argparse
import io
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from datetime import time as clock
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
BENCH_DB = "scrm_bench_sop"
QUEUE = "scrm_bench_sop"  # our own Celery queue: no other worker on the broker takes these
SLOT_TIME = clock(10, 0)  # Shanghai; outside the default quiet hours, so nothing is held
JOURNEY_DAYS = 7
TARGET_SECONDS = 10.0
# Send settings: the limiter out of the way, so the numbers are our code's and the fake's.
SEND_ENV = {"WECOM_RATE_PER_SECOND": "10000", "WECOM_CONCURRENCY": "50"}


def bench_url(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{BENCH_DB}"))


def _copy(cursor, table: str, columns: str, lines) -> None:
    """COPY text rows (tab-separated, one per line) in chunks of about 8 MB."""
    with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        buffer = io.StringIO()
        for line in lines:
            buffer.write(line)
            if buffer.tell() > 8_000_000:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
        copy.write(buffer.getvalue())


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def slot_of(day) -> datetime:
    from sop.conduct import at_local

    return at_local(day, SLOT_TIME)


def load(*, groups: int, contacts: int, staff_count: int, slot: datetime, seed: int) -> dict:
    """Fill the bench database; returns the ids and sizes later steps need."""
    import numpy as np
    from django.db import connection

    from contacts.models import Staff
    from sop.conduct import SHANGHAI
    from sop.models import ContentItem, Plan, Step

    rng = np.random.default_rng(seed)
    created = (slot - timedelta(days=400)).isoformat()
    staff = Staff.objects.bulk_create(
        Staff(userid=f"bench-staff-{n:03d}", name=f"员工{n:03d}") for n in range(staff_count)
    )
    staff_ids = np.array([s.pk for s in staff])
    group_owner = staff_ids[rng.integers(0, staff_count, size=groups)]
    contact_staff = rng.integers(0, staff_count, size=contacts)
    # Each contact triggered the journey on the slot day a week ago, before 10:00 Shanghai.
    trigger_day = (slot - timedelta(days=JOURNEY_DAYS)).astimezone(SHANGHAI).date()
    trigger_start = datetime.combine(trigger_day, clock(0, 0), tzinfo=SHANGHAI)
    trigger_seconds = rng.integers(0, 10 * 3600, size=contacts)

    plain = ContentItem.objects.create(
        title="Daily tip", purpose=ContentItem.Purpose.ACTIVATION, text="今天的小贴士：多喝水。"
    )
    ContentItem.objects.create(
        title="Hello by name", purpose=ContentItem.Purpose.ACTIVATION, text="{name}，您好！"
    )
    group_plan = Plan.objects.create(
        name="Daily group tip",
        kind=Plan.Kind.GROUP,
        status=Plan.Status.ACTIVE,
        activated_at=slot - timedelta(days=1),
        planned_until=slot - timedelta(minutes=5),
    )
    Step.objects.create(plan=group_plan, content=plain, at_time=SLOT_TIME)
    journey = Plan.objects.create(
        name="A week after adding",
        kind=Plan.Kind.JOURNEY,
        status=Plan.Status.ACTIVE,
        trigger=Plan.Trigger.CONTACT_ADDED,
        activated_at=slot - timedelta(days=JOURNEY_DAYS + 3),
        planned_until=slot - timedelta(minutes=5),
    )
    Step.objects.create(plan=journey, content=plain, at_time=SLOT_TIME, offset_days=JOURNEY_DAYS)

    started = time.perf_counter()
    with connection.cursor() as cursor:
        _copy(
            cursor,
            "groups_group",
            "id, chat_id, name, type, model, stage, notice, rules, welcome_message, member_cap,"
            " labels, created_at, owner_id",
            (
                f"{i + 1}\twrbench{i:07d}\t群{i:06d}\tbenefit\trefined\tretention\t\t\t\t500\t{{}}"
                f"\t{created}\t{group_owner[i]}\n"
                for i in range(groups)
            ),
        )
        _copy(
            cursor,
            "contacts_contact",
            "id, external_userid, name, gender, avatar, unionid, stage, influence, opted_out,"
            " points_balance, first_added_at, created_at, updated_at",
            (
                f"{i + 1}\twm-bench-{i:07d}\t客户{i:07d}\t{i % 3}\t\t\tnew\t\tf\t0"
                f"\t{(trigger_start + timedelta(seconds=int(trigger_seconds[i]))).isoformat()}"
                f"\t{created}\t{created}\n"
                for i in range(contacts)
            ),
        )
        _copy(
            cursor,
            "contacts_follow",
            "contact_id, staff_id, remark, description, added_at, add_way, state",
            (
                f"{i + 1}\t{staff_ids[contact_staff[i]]}\t\t\t"
                f"{(trigger_start + timedelta(seconds=int(trigger_seconds[i]))).isoformat()}\t0\t\n"
                for i in range(contacts)
            ),
        )
        _copy(
            cursor,
            "sop_enrolment",
            "plan_id, contact_id, staff_id, trigger_at, created_at",
            (
                f"{journey.pk}\t{i + 1}\t{staff_ids[contact_staff[i]]}"
                f"\t{(trigger_start + timedelta(seconds=int(trigger_seconds[i]))).isoformat()}"
                f"\t{created}\n"
                for i in range(contacts)
            ),
        )
        for table in ("groups_group", "contacts_contact"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), GREATEST(%s, 1))",
                [groups if table == "groups_group" else contacts],
            )
    loaded = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return {
        "staff": staff,
        "group_owner": group_owner,
        "contact_staff": contact_staff,
        "load_seconds": loaded,
        "vacuum_seconds": time.perf_counter() - started - loaded,
    }


def fake_world(*, groups: int, contacts: int, data: dict) -> dict:
    """The same staff, customers and groups in the shape FakeWeCom.load_world takes.

    Built from the arrays the load used rather than by groups.selectors.wecom_world(), which
    loads every contact, follow, tag and membership through the ORM (see --world-from-db).
    """
    staff = data["staff"]
    userid = {s.pk: s.userid for s in staff}
    return {
        "staff": [{"userid": s.userid, "name": s.name, "status": 1} for s in staff],
        "contacts": [
            {
                "external_userid": f"wm-bench-{i:07d}",
                "name": f"客户{i:07d}",
                "follow_users": [{"userid": staff[data["contact_staff"][i]].userid}],
            }
            for i in range(contacts)
        ],
        "groups": [
            {"chat_id": f"wrbench{i:07d}", "name": f"群{i:06d}", "owner": userid[owner]}
            for i, owner in enumerate(data["group_owner"].tolist())
        ],
    }


def start_workers(*, count: int, concurrency: int, env: dict, log_dir: Path) -> list:
    """Celery workers in subprocesses, on our queue only; returns once all answer a ping."""
    from scrm.celery import app

    workers = []
    for n in range(count):
        log = open(log_dir / f"worker-{n}.log", "w")  # noqa: SIM115 - closed with the worker
        command = [
            str(ROOT / ".venv" / "bin" / "celery"),
            "-A",
            "scrm.celery",
            "worker",
            "-P",
            "threads",
            "-c",
            str(concurrency),
            "-Q",
            QUEUE,
            "-n",
            f"bench-sop-{n}-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "WARNING",
        ]
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
        workers.append((process, log))
    names = {f"bench-sop-{n}-{os.getpid()}" for n in range(count)}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answered = {name.split("@")[0] for reply in app.control.ping(timeout=1) for name in reply}
        if names <= answered:
            return workers
        if any(p.poll() is not None for p, _ in workers):
            break
    stop_workers(workers)
    raise RuntimeError(f"Celery workers did not start; see the logs in {log_dir}")


def stop_workers(workers: list) -> None:
    for process, _ in workers:
        if process.poll() is None:
            process.terminate()  # warm shutdown: finish the task at hand
    for process, log in workers:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


class SlowQueries:
    """Times every SQL statement run through Django's connection (an execute wrapper)."""

    def __init__(self):
        self.samples = []

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.samples.append((time.perf_counter() - started, " ".join(sql.split())))

    def report(self, title: str, top: int = 6) -> str:
        total = sum(seconds for seconds, _ in self.samples)
        by_sql = {}
        for seconds, sql in self.samples:
            count, spent = by_sql.get(sql[:150], (0, 0.0))
            by_sql[sql[:150]] = (count + 1, spent + seconds)
        lines = [f"{title}: {len(self.samples):,} statements, {total:.2f} s in SQL"]
        for sql, (count, spent) in sorted(by_sql.items(), key=lambda kv: -kv[1][1])[:top]:
            lines.append(f"  {spent:7.2f} s  ×{count:<5} {sql}")
        return "\n".join(lines)


def wait_until_sent(*, timeout: float) -> bool:
    from sop.models import MassMessage

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not MassMessage.objects.filter(
            status__in=[MassMessage.Status.QUEUED, MassMessage.Status.SENDING]
        ).exists():
            return True
        time.sleep(0.2)
    return False


def send_with_threads(message_ids: list[int], *, threads: int) -> dict:
    from django.db import connection

    from sop.sending import message_send

    def send(message_id: int) -> str:
        try:
            return message_send(message_id)
        finally:
            connection.close()  # this thread's connection, so DROP DATABASE is not blocked

    with ThreadPoolExecutor(max_workers=threads) as pool:
        outcomes = list(pool.map(send, message_ids))
    return {outcome: outcomes.count(outcome) for outcome in set(outcomes)}


def check_sent(*, fake, planned: int, created: list[int]) -> list[str]:
    """What a user would notice if sending went wrong; an empty list when all is well."""
    from django.db.models import Count

    from analytics.models import Event, EventType
    from sop.models import Delivery, MassMessage

    problems = []
    by_status = dict(
        Delivery.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    if by_status != {Delivery.Status.SENT: planned}:
        problems.append(f"deliveries by status {by_status}, expected {planned:,} sent")
    sent_events = Event.objects.filter(type=EventType.DELIVERY_SENT).count()
    if sent_events != planned:
        problems.append(f"{sent_events:,} 'sent' events for {planned:,} deliveries")
    messages = MassMessage.objects.filter(pk__in=created)
    unsent = messages.exclude(status=MassMessage.Status.SENT).count()
    if unsent:
        problems.append(f"{unsent:,} mass messages not sent")
    msgids = set(messages.values_list("msgid", flat=True))
    with fake.world.lock:
        held = dict(fake.world.mass_messages)
    if set(held) != msgids or len(held) != len(created):
        problems.append(f"WeCom holds {len(held):,} messages, we created {len(created):,}")
    receivers = [(m.chat_type, r.target) for m in held.values() for r in m.receipts]
    if len(receivers) != planned or len(set(receivers)) != len(receivers):
        problems.append(
            f"WeCom has {len(receivers):,} receipts ({len(set(receivers)):,} distinct) "
            f"for {planned:,} deliveries"
        )
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=50_000)
    parser.add_argument("--contacts", type=int, default=200_000, help="journey targets")
    parser.add_argument("--staff", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--send-with", choices=["celery", "threads"], default="celery")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes")
    parser.add_argument("--concurrency", type=int, default=8, help="threads per worker / pool")
    parser.add_argument("--send-timeout", type=float, default=600.0)
    parser.add_argument(
        "--world-from-db",
        action="store_true",
        help="build the fake's world with groups.selectors.wecom_world() (timed) instead",
    )
    parser.add_argument("--plan-only", action="store_true", help="stop after planning")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()

    import psycopg

    admin_url = os.environ["DATABASE_URL"]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    os.environ["DATABASE_URL"] = bench_url(admin_url)
    os.environ.update(SEND_ENV)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scrm.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from scrm.celery import app
    from sop import planner, sending
    from sop.models import Delivery
    from sop.tasks import queue_sends
    from wecom import gateway
    from wecom.fake import FakeWeCom

    app.conf.task_default_queue = QUEUE
    slot_day = date(2026, 9, 8)  # a Tuesday, no public holiday
    slot = slot_of(slot_day)
    now = slot + timedelta(minutes=1)
    rows = []  # (what, value) for the table at the end
    problems = []
    workers = []
    fake = None
    log_dir = Path(tempfile.mkdtemp(prefix="bench-sop-"))
    try:
        started = time.perf_counter()
        call_command("migrate", verbosity=0)
        migrate_seconds = time.perf_counter() - started
        data = load(
            groups=args.groups,
            contacts=args.contacts,
            staff_count=args.staff,
            slot=slot,
            seed=args.seed,
        )
        print(
            f"loaded {args.groups:,} groups, {args.contacts:,} contacts/follows/enrolments, "
            f"{args.staff} staff in {data['load_seconds']:.1f} s "
            f"(migrate {migrate_seconds:.1f} s, VACUUM ANALYZE {data['vacuum_seconds']:.1f} s)",
            flush=True,
        )
        rss_before = peak_rss_mb()

        started = time.perf_counter()
        plan_sql = SlowQueries()
        with connection.execute_wrapper(plan_sql):
            first = planner.plan_due(now=now)
        plan_seconds = time.perf_counter() - started
        rss_after = peak_rss_mb()
        started = time.perf_counter()
        again = planner.plan_due(now=now)
        again_seconds = time.perf_counter() - started
        expected = args.groups + args.contacts
        print(
            f"plan_due: {plan_seconds:.2f} s, planned {first.planned:,}, skipped {first.skipped}",
            flush=True,
        )
        if first.planned != expected:
            problems.append(f"planned {first.planned:,}, expected {expected:,}")
        if again.planned or again.skipped:
            problems.append(f"second run planned {again.planned:,}, skipped {again.skipped}")
        verdict = "meets" if plan_seconds < TARGET_SECONDS else "MISSES"
        rows += [
            ("plan_due, first run", f"{plan_seconds:.2f} s ({verdict} < {TARGET_SECONDS:.0f} s)"),
            ("  deliveries planned", f"{first.planned:,} (expected {expected:,})"),
            ("  deliveries skipped", f"{sum(first.skipped.values()):,} {first.skipped or ''}"),
            ("  peak RSS before → after", f"{rss_before:.0f} → {rss_after:.0f} MB"),
            ("plan_due, same minute again", f"{again_seconds:.2f} s, planned {again.planned:,}"),
        ]

        if args.plan_only:
            return finish(args, slot, rows, problems, plan_sql, None)

        # The fake WeCom with our world, and the gateway of every sender pointed at it.
        fake = FakeWeCom(
            corp_id=settings.WECOM_CORP_ID,
            secret=settings.WECOM_SECRET,
            token=settings.WECOM_TOKEN,
            aes_key=settings.WECOM_AES_KEY,
            agent_id=settings.WECOM_AGENT_ID,
        ).start()
        started = time.perf_counter()
        if args.world_from_db:
            from groups.selectors import wecom_world

            world = wecom_world()
            how = "groups.selectors.wecom_world()"
        else:
            world = fake_world(groups=args.groups, contacts=args.contacts, data=data)
            how = "built from the load's arrays"
        world_seconds = time.perf_counter() - started
        fake.load_world(world)
        del world
        rows.append(("fake WeCom world", f"{world_seconds:.1f} s, {how}"))
        settings.WECOM_API_BASE = fake.api_base
        gateway.client.cache_clear()
        # A token cached for an earlier fake would be refused once (40014) by this one.
        redis = gateway.client()._redis
        for key in redis.scan_iter(f"wecom:{settings.WECOM_CORP_ID}_access_token"):
            redis.delete(key)
        worker_env = {**os.environ, "WECOM_API_BASE": fake.api_base}
        if args.send_with == "celery":
            with app.connection_for_write() as broker:
                broker.default_channel.queue_purge(QUEUE)
            workers = start_workers(
                count=args.workers, concurrency=args.concurrency, env=worker_env, log_dir=log_dir
            )

        started = time.perf_counter()
        dispatch_sql = SlowQueries()
        with connection.execute_wrapper(dispatch_sql):
            created = sending.dispatch_due(now)
        dispatch_seconds = time.perf_counter() - started
        with connection.cursor() as cursor:
            # What one message per sender and content would give (receiver caps aside).
            cursor.execute(
                "SELECT count(DISTINCT (d.sender_id, d.group_id IS NULL, s.content_id))"
                " FROM sop_delivery d JOIN sop_step s ON s.id = d.step_id"
                " WHERE d.message_id IS NOT NULL"
            )
            ideal = cursor.fetchone()[0]
        print(f"dispatch_due: {dispatch_seconds:.2f} s, {len(created):,} mass messages", flush=True)
        rows += [
            ("dispatch_due", f"{dispatch_seconds:.2f} s"),
            ("  mass messages created", f"{len(created):,}"),
            ("  (sender, chat type, content) batches", f"{ideal:,}"),
        ]

        started = time.perf_counter()
        if args.send_with == "celery":
            queue_sends(created)
            finished = wait_until_sent(timeout=args.send_timeout)
            how = f"{args.workers} Celery workers × {args.concurrency} threads"
        else:
            outcomes = send_with_threads(created, threads=args.concurrency)
            finished = True
            how = f"thread pool of {args.concurrency} calling message_send ({outcomes})"
        send_seconds = time.perf_counter() - started
        if not finished:
            problems.append(f"not all messages sent within {args.send_timeout:.0f} s")
        sent = Delivery.objects.filter(status=Delivery.Status.SENT).count()
        rows += [
            ("send", f"{send_seconds:.2f} s, {how}"),
            ("  mass messages/s", f"{len(created) / send_seconds:,.0f}"),
            ("  deliveries (receivers)/s", f"{sent / send_seconds:,.0f} ({sent:,} sent)"),
            (
                "  dispatch + send, deliveries/s",
                f"{sent / (dispatch_seconds + send_seconds):,.0f}",
            ),
        ]
        problems += check_sent(fake=fake, planned=first.planned, created=created)
        for api, stats in fake.stats().items():
            rows.append(
                (
                    f"  fake WeCom {api}",
                    f"{stats['total']:,} calls, max {stats['max_in_1s']}/s,"
                    f" errors {stats['errors'] or 'none'}",
                )
            )
    finally:
        stop_workers(workers)
        if fake is not None:
            fake.stop()
        connection.close()
        if not args.keep:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')

    finish(args, slot, rows, problems, plan_sql, dispatch_sql, log_dir=log_dir)


def finish(args, slot, rows, problems, plan_sql, dispatch_sql, *, log_dir=None) -> None:
    """Print the slowest SQL and the table of results; exit 1 if a check failed."""
    print("\n" + plan_sql.report("plan_due, slowest SQL"))
    if dispatch_sql is not None:
        print(dispatch_sql.report("dispatch_due, slowest SQL"))
    print(
        f"\nSOP engine: {args.groups:,} groups + {args.contacts:,} journey targets "
        f"({args.staff} staff), slot {slot:%Y-%m-%d %H:%M %Z}"
    )
    width = max(len(what) for what, _ in rows) + 2
    for what, value in rows:
        print(f"{what:<{width}}{value}")
    if problems:
        print("\nPROBLEMS:\n  " + "\n  ".join(problems))
        sys.exit(1)
    if args.plan_only:
        return
    print("checks: every delivery sent once; WeCom holds exactly our messages, one per receiver")
    if log_dir is not None and args.send_with == "celery":
        print(f"worker logs: {log_dir}")


if __name__ == "__main__":
    main()
