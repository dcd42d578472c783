"""Runs the fake WeCom server in the foreground, for the offline demo and load tests."""

import json
import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from wecom.fake import FakeWeCom
from wecom.fake.server import (
    DEFAULT_AES_KEY,
    DEFAULT_AGENT_ID,
    DEFAULT_CORP_ID,
    DEFAULT_SECRET,
    DEFAULT_TOKEN,
)


def _setting(name: str, default: str) -> str:
    # An unset environment variable may leave the setting empty: fall back to the fake's default.
    return getattr(settings, name, None) or default


def _interrupt(signum, frame):
    # honcho and docker stop processes with SIGTERM: stop as cleanly as on Ctrl-C.
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Run the fake WeCom (APIs under /cgi-bin/, controls under /_fake/) until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8900)
        parser.add_argument("--world", help="JSON file with staff, contacts, tag_groups, groups")
        parser.add_argument(
            "--callback-url",
            help="where to post callbacks, e.g. http://127.0.0.1:8000/wecom/callback",
        )
        parser.add_argument("--token-ttl", type=int, default=7200)
        parser.add_argument(
            "--mass-message-cap",
            type=int,
            default=getattr(settings, "WECOM_MASS_MESSAGES_PER_DAY", 1),
            help="mass messages a customer or group receives per day",
        )
        parser.add_argument(
            "--rate-limit",
            action="append",
            default=[],
            metavar="API=PER_SECOND",
            help="e.g. externalcontact/mark_tag=40 (repeatable)",
        )

    def handle(self, *args, **options):
        rate_limits = {}
        for item in options["rate_limit"]:
            api, _, per_second = item.partition("=")
            try:
                rate_limits[api] = float(per_second)
            except ValueError:
                raise CommandError(f"--rate-limit wants API=PER_SECOND, got {item!r}") from None
        fake = FakeWeCom(
            corp_id=_setting("WECOM_CORP_ID", DEFAULT_CORP_ID),
            secret=_setting("WECOM_SECRET", DEFAULT_SECRET),
            token=_setting("WECOM_TOKEN", DEFAULT_TOKEN),
            aes_key=_setting("WECOM_AES_KEY", DEFAULT_AES_KEY),
            agent_id=str(_setting("WECOM_AGENT_ID", DEFAULT_AGENT_ID)),
            callback_url=options["callback_url"],
            token_ttl=options["token_ttl"],
            mass_message_cap=options["mass_message_cap"],
            rate_limits=rate_limits,
        )
        if options["world"]:
            with open(options["world"], encoding="utf-8") as world_file:
                fake.load_world(json.load(world_file))
        signal.signal(signal.SIGTERM, _interrupt)
        fake.start(options["host"], options["port"])
        self.stdout.write(
            f"Fake WeCom at {fake.api_base} (corp {fake.corp_id}); "
            f"controls at {fake.url}/_fake/; callbacks to "
            f"{fake.callback_url or 'nowhere'}. Ctrl-C stops it."
        )
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            self.stdout.write("Stopping the fake WeCom.")
        finally:
            fake.stop()
