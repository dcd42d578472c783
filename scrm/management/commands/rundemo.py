"""`make demo`: migrate, load demo data, create the demo logins, run web + worker + beat."""

import json
import os
import secrets
import sys
from pathlib import Path

from django.conf import settings
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand
from django.db import connections, transaction
from django.utils import translation

from contacts.models import Staff
from groups.selectors import wecom_world
from scrm.models import Role, User

DEMO_URL = "http://127.0.0.1:8000/"
# username → role; the order they are printed in.
DEMO_LOGINS = {"manager": Role.ADMIN, "operator": Role.OPERATOR, "analyst": Role.ANALYST}
# The staff member the demo data makes for the operator to log in as (analytics demo_data).
DEMO_OPERATOR_STAFF_USERID = "demo-staff-01"
PASSWORD_FILE_NAME = "demo-password"
FAKE_WORLD_FILE_NAME = "fake-wecom-world.json"


def demo_password(*, data_dir: Path) -> str:
    """The demo logins' password: made once, kept under .data/ so every run prints the same."""
    path = Path(data_dir) / PASSWORD_FILE_NAME
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(9)
    # Letters and digits only, so a double-click in the terminal selects all of it.
    while not password.isalnum():
        password = secrets.token_urlsafe(9)
    # Created with mode 600 from the start: the file is never readable by others.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(password + "\n")
    return password


@transaction.atomic
def demo_logins_ensure(*, password: str) -> list[tuple[User, bool]]:
    """Create the demo logins that are missing; returns (user, created) in DEMO_LOGINS order.

    Existing logins are left as they are, so a password someone changed stays changed.
    """
    logins = []
    for username, role in DEMO_LOGINS.items():
        user = User.objects.filter(username=username).first()
        created = user is None
        if created:
            user = User(username=username, role=role)
            # Managers also get Django admin (the admin pages are for managers).
            user.is_staff = role == Role.ADMIN
            user.is_superuser = role == Role.ADMIN
            user.set_password(password)
            user.save()
        logins.append((user, created))

    operator = next(user for user, _ in logins if user.username == "operator")
    staff = Staff.objects.filter(userid=DEMO_OPERATOR_STAFF_USERID, user__isnull=True).first()
    if staff and not Staff.objects.filter(user=operator).exists():
        staff.user = operator
        staff.save(update_fields=["user"])
    return logins


class Command(BaseCommand):
    help = (
        "Prepare the demo (migrate, static files, demo data, demo logins) and run web, "
        "worker and beat in the foreground until Ctrl-C."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-serve",
            action="store_true",
            help="Prepare everything and print the logins, but start no processes.",
        )

    def handle(self, *args, no_serve: bool = False, **options):
        call_command("migrate", interactive=False, verbosity=1)
        call_command("collectstatic", interactive=False, verbosity=0)
        if "demo_data" in get_commands():
            call_command("demo_data")
        else:
            self.stdout.write(
                self.style.WARNING("Note: no demo_data command yet; starting without demo data.")
            )

        if settings.WECOM_FAKE:
            # The fake WeCom starts with the demo's own world, so syncs and callbacks agree.
            world = Path(settings.DATA_DIR) / FAKE_WORLD_FILE_NAME
            world.write_text(json.dumps(wecom_world(), ensure_ascii=False))
        password = demo_password(data_dir=settings.DATA_DIR)
        logins = demo_logins_ensure(password=password)
        self.print_logins(logins, password)
        if no_serve:
            return
        processes = (
            "web, worker, beat and the fake WeCom"
            if settings.WECOM_FAKE
            else ("web, worker and beat")
        )
        self.stdout.write(f"Starting {processes}; stop them with Ctrl-C.\n")
        self.serve()

    def print_logins(self, logins: list[tuple[User, bool]], password: str) -> None:
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(f"SCRM demo: open {DEMO_URL}"))
        self.stdout.write("Logins (username / password / role):")
        for user, created in logins:
            if created or user.check_password(password):
                shown = password
            else:
                shown = "(changed since; not shown)"
            with translation.override("en"):
                role = str(Role(user.role).label)
            self.stdout.write(f"  {user.username:<10} {shown:<14} {role}")
        password_file = Path(settings.DATA_DIR) / PASSWORD_FILE_NAME
        self.stdout.write(f"The password is kept in {password_file}.")
        self.stdout.write("")

    def serve(self) -> None:
        self.stdout.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        connections.close_all()
        env = dict(os.environ)
        # The Procfile says `python`; make it this interpreter's (the venv's) however we started.
        bin_dir = os.path.dirname(sys.executable)
        env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
        os.chdir(settings.BASE_DIR)
        argv = [
            sys.executable, "-m", "honcho", "start",
            "-f", str(Path(settings.BASE_DIR) / "Procfile"),
            # .env is docker compose's file; the demo runs on the environment it was given.
            "--env", os.devnull,
        ]  # fmt: skip
        # Without real WeCom credentials the fake WeCom runs beside the product.
        argv += (
            ["web", "worker", "beat", "wecom"] if settings.WECOM_FAKE else ["web", "worker", "beat"]
        )
        os.execvpe(sys.executable, argv, env)
