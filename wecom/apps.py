from django.apps import AppConfig


class WecomConfig(AppConfig):
    name = "wecom"
