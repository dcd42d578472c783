"""`manage.py makemessages`, also reading `_t(...)`: modules that need both a lazy and an
immediate gettext import the immediate one as `_t`, which xgettext does not know by default
(Django's documented way: extend xgettext_options in a command of the same name)."""

from django.core.management.commands import makemessages


class Command(makemessages.Command):
    xgettext_options = [*makemessages.Command.xgettext_options, "--keyword=_t"]
