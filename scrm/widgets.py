"""Form widgets of our own, where Django's are too slow for the number of options we have."""

from django import forms
from django.forms.utils import flatatt
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe


class OptionsWrittenOut:
    """A select of hundreds of options (every group, say) written out directly: the markup
    of Django's select template, but not one template rendering per option (some 50 µs
    apiece; a thousand groups cost a page about 55 ms)."""

    def render(self, name, value, attrs=None, renderer=None):
        widget = self.get_context(name, value, attrs)["widget"]
        parts = []
        for group_name, options, _index in widget["optgroups"]:
            html = format_html_join(
                "",
                '<option value="{}"{}>{}</option>',
                ((o["value"], flatatt(o["attrs"]), o["label"]) for o in options),
            )
            if group_name:
                html = format_html('<optgroup label="{}">{}</optgroup>', group_name, html)
            parts.append(html)
        return format_html(
            '<select name="{}"{}>{}</select>',
            widget["name"],
            flatatt(widget["attrs"]),
            mark_safe("".join(parts)),  # each part built by format_html
        )


class ManyOptionsSelect(OptionsWrittenOut, forms.Select):
    pass


class ManyOptionsSelectMultiple(OptionsWrittenOut, forms.SelectMultiple):
    pass
