#!/usr/bin/env python
"""Django's command-line utility; a bad configuration stops it with one readable line."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scrm.settings")
    from scrm.config import exit_on_bad_config

    exit_on_bad_config(os.environ["DJANGO_SETTINGS_MODULE"])
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
