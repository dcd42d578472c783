"""The webhook WeCom calls: verify, decrypt, store once, answer at once; a worker applies it."""

import logging

from django.conf import settings
from django.db import transaction
from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from kombu.exceptions import OperationalError
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.exceptions import InvalidSignatureException

from wecom import services, tasks
from wecom.events import parse

logger = logging.getLogger(__name__)
SIGNATURE_PARAMS = ("msg_signature", "timestamp", "nonce")


def _crypto() -> WeChatCrypto:
    return WeChatCrypto(settings.WECOM_TOKEN, settings.WECOM_AES_KEY, settings.WECOM_CORP_ID)


def _enqueue(callback_id: int) -> None:
    try:
        tasks.apply_callback.delay(callback_id)
    except OperationalError:
        # Stored already: the every-minute sweep queues it once the broker is back.
        logger.warning("broker unavailable; callback %s waits for the sweep", callback_id)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def wecom_callback(request):
    missing = [name for name in SIGNATURE_PARAMS if not request.GET.get(name)]
    if missing:
        logger.warning(
            "wecom callback without %s from %s", missing, request.META.get("REMOTE_ADDR")
        )
        return HttpResponseBadRequest(f"missing {', '.join(missing)}")
    signature, timestamp, nonce = (request.GET[name] for name in SIGNATURE_PARAMS)

    if request.method == "GET":  # URL verification when the admin saves the callback URL
        try:
            echo = _crypto().check_signature(
                signature, timestamp, nonce, request.GET.get("echostr", "")
            )
        except (InvalidSignatureException, InvalidCorpIdException) as exc:
            logger.warning("wecom URL verification refused: %s", type(exc).__name__)
            return HttpResponseForbidden("bad signature")
        except Exception as exc:  # noqa: BLE001 - a malformed echostr fails in many ways
            logger.warning("wecom URL verification malformed: %s", exc)
            return HttpResponseBadRequest("malformed echostr")
        return HttpResponse(echo, content_type="text/plain")

    try:
        xml = _crypto().decrypt_message(request.body, signature, timestamp, nonce)
        fields = parse(xml)
    except (InvalidSignatureException, InvalidCorpIdException) as exc:
        logger.warning("wecom callback refused: %s", type(exc).__name__)
        return HttpResponseForbidden("bad signature or corp id")
    except Exception as exc:  # noqa: BLE001 - bad XML, bad padding, bad base64...
        logger.warning("wecom callback malformed: %s", exc)
        return HttpResponseBadRequest("malformed message")

    callback_id, pending = services.callback_store(xml=xml, fields=fields)
    if pending:  # new, or stored before but not yet applied (the broker was down)
        transaction.on_commit(lambda: _enqueue(callback_id))
    return HttpResponse("success", content_type="text/plain")
