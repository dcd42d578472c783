"""How WeCom's contact and tag callbacks change our contacts (registered with wecom.events)."""

from django.db import transaction

from contacts import services, tasks
from wecom.events import CallbackMessage, handles


@handles(
    "change_external_contact/add_external_contact",
    "change_external_contact/add_half_external_contact",
)
def contact_added(message: CallbackMessage) -> None:
    follow = services.contact_added(
        userid=message.get("UserID"),
        external_userid=message.get("ExternalUserID"),
        state=message.get("State"),
        occurred_at=message.occurred_at,
        key=message.key,
    )
    from campaigns.fission import arrival  # campaigns sits above contacts: imported late

    arrival(message.get("State"), follow.contact, at=message.occurred_at)  # share-link referrals
    welcome_code = message.get("WelcomeCode")
    # After commit, and as separate tasks: the welcome has a 20 s window and must not wait
    # for (or fail with) the profile fetch.
    if welcome_code and follow.channel_id:
        transaction.on_commit(
            lambda: tasks.send_welcome_message.delay(
                follow_id=follow.pk,
                welcome_code=welcome_code,
                added_at=message.occurred_at.timestamp(),
            )
        )
    transaction.on_commit(lambda: tasks.refresh_contact.delay(follow.contact.external_userid))


@handles("change_external_contact/edit_external_contact")
def contact_edited(message: CallbackMessage) -> None:
    external_userid = message.get("ExternalUserID")
    transaction.on_commit(lambda: tasks.refresh_contact.delay(external_userid))


@handles("change_external_contact/del_external_contact")
def contact_deleted_by_staff(message: CallbackMessage) -> None:
    services.follow_ended(
        userid=message.get("UserID"),
        external_userid=message.get("ExternalUserID"),
        occurred_at=message.occurred_at,
        by_contact=False,
        key=message.key,
        reason=message.get("Source"),  # DELETE_BY_TRANSFER when a transfer removed it
    )


@handles("change_external_contact/del_follow_user")
def staff_deleted_by_contact(message: CallbackMessage) -> None:
    services.follow_ended(
        userid=message.get("UserID"),
        external_userid=message.get("ExternalUserID"),
        occurred_at=message.occurred_at,
        by_contact=True,
        key=message.key,
    )


@handles(
    "change_external_tag/create",
    "change_external_tag/update",
    "change_external_tag/delete",
    "change_external_tag/shuffle",
)
def corp_tags_changed(message: CallbackMessage) -> None:
    # The callback names one tag or group; the whole list is small, so mirror it all.
    transaction.on_commit(tasks.sync_corp_tags.delay)
