"""Form widgets of our own, where Django's are too slow for the number of options we have."""

from django import forms
from django.forms.utils import flatatt
from django.utils.html import format_html, format_html_join


class ManyOptionsSelect(forms.Select):
    """A select of hundreds of options (every group, say), written out directly.

    The same markup as forms.Select, but Django renders each option through a template of
    its own, some 50 µs apiece: a thousand groups cost the contact list about 55 ms.
    """

    def render(self, name, value, attrs=None, renderer=None):
        widget = self.get_context(name, value, attrs)["widget"]
        options = format_html_join(
            "",
            '<option value="{}"{}>{}</option>',
            (
                (option["value"], flatatt(option["attrs"]), option["label"])
                for _group, group_options, _index in widget["optgroups"]
                for option in group_options
            ),
        )
        return format_html(
            '<select name="{}"{}>{}</select>', widget["name"], flatatt(widget["attrs"]), options
        )
