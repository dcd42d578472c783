"""Role rules shared by pages and the API: who may read, who may write."""

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission


def can_write(user) -> bool:
    return user.is_authenticated and user.is_active and not user.is_read_only


class RolePermission(BasePermission):
    """Every API call needs a login; analysts may only read."""

    message = "Analysts have read-only access."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return request.method in SAFE_METHODS or can_write(user)


class RoleRequiredMixin(LoginRequiredMixin):
    """Pages: a login for every request, and no writes from analysts."""

    def dispatch(self, request, *args, **kwargs):
        if (
            request.user.is_authenticated
            and request.method not in ("GET", "HEAD", "OPTIONS")
            and not can_write(request.user)
        ):
            raise PermissionDenied("Analysts have read-only access.")
        return super().dispatch(request, *args, **kwargs)
