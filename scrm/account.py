"""The settings page (设置): each user's API token, managers' view of everyone's, the API docs."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods
from rest_framework.authtoken.models import Token

from scrm.models import User

# Enough of a key to tell tokens apart on screen, too little to use one.
TOKEN_VISIBLE_CHARS = 4
# The session key holding a just-issued token until the settings page has shown it once.
TOKEN_SHOWN_ONCE = "api_token_shown_once"


def api_token_masked(key: str) -> str:
    return key[:TOKEN_VISIBLE_CHARS] + "•" * 12


def api_token_issue(*, user: User) -> Token:
    """A new API token for the user; the old one, if any, stops working at once."""
    with transaction.atomic():
        Token.objects.filter(user=user).delete()
        return Token.objects.create(user=user)


def api_token_may_revoke(*, actor: User, owner: User) -> bool:
    return actor.pk == owner.pk or actor.is_manager


def api_token_revoke(*, actor: User, owner: User) -> bool:
    """Revoke owner's token: their own for anyone, anyone's for a manager. False if none."""
    if not api_token_may_revoke(actor=actor, owner=owner):
        raise PermissionDenied(_("Only managers may revoke another user's API token."))
    deleted, _rows = Token.objects.filter(user=owner).delete()
    return bool(deleted)


def api_tokens_of_all_users() -> list[Token]:
    return list(Token.objects.select_related("user").order_by("user__username"))


# Analysts may hold a token too (the API keeps them read-only through scrm.roles), so these
# views need only a login, not RoleRequiredMixin's write permission.


@login_required
@require_http_methods(["GET", "HEAD"])
def settings_page(request):
    token = Token.objects.filter(user=request.user).first()
    new_key = request.session.pop(TOKEN_SHOWN_ONCE, None)
    context = {
        "active_nav": "settings",
        "token": token,
        "token_masked": api_token_masked(token.key) if token else "",
        # Shown in full only on the first visit after it was issued, and only while current.
        "new_key": new_key if token and new_key == token.key else None,
        "all_tokens": [
            {"token": item, "masked": api_token_masked(item.key)}
            for item in api_tokens_of_all_users()
        ]
        if request.user.is_manager
        else None,
    }
    return render(request, "settings/settings.html", context)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def api_token_issue_view(request):
    """GET asks to confirm when a token would be replaced; POST issues the new token."""
    has_token = Token.objects.filter(user=request.user).exists()
    if request.method == "POST":
        token = api_token_issue(user=request.user)
        request.session[TOKEN_SHOWN_ONCE] = token.key
        messages.success(
            request, _("New API token created.") if not has_token else _("API token regenerated.")
        )
        return redirect("settings")
    action = "regenerate" if has_token else "create"
    return render(
        request, "settings/token_confirm.html", {"active_nav": "settings", "action": action}
    )


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def api_token_revoke_view(request, user_id: int):
    """GET asks to confirm; POST revokes (a manager may revoke anyone's token)."""
    owner = get_object_or_404(User, pk=user_id)
    if not api_token_may_revoke(actor=request.user, owner=owner):
        raise PermissionDenied(_("Only managers may revoke another user's API token."))
    if request.method == "POST":
        if api_token_revoke(actor=request.user, owner=owner):
            messages.success(request, _("API token revoked."))
        else:
            messages.info(request, _("There was no API token to revoke."))
        return redirect("settings")
    return render(
        request,
        "settings/token_confirm.html",
        {"active_nav": "settings", "action": "revoke", "owner": owner},
    )
