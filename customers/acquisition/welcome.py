"""Welcome messages: copy validation, variables, attachments, and the send inside WeCom's 20-second
window, recorded as a WelcomeDelivery every time."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext as _

from customers.acquisition.errors import AcquisitionError, wecom_error_text
from customers.models import Relationship, WelcomeDelivery, WelcomeMessage
from portal.wecom.gateway import WeComError, wecom_call

# -- welcome messages -------------------------------------------------------------------------------
WELCOME_WINDOW = timedelta(seconds=20)
WELCOME_VARIABLES = ("{客户昵称}", "{员工姓名}", "{门店名称}")
SAMPLE_VALUES = {"{客户昵称}": "小明", "{员工姓名}": "李导购", "{门店名称}": "上海徐汇店"}
ATTACHMENT_FIELDS: dict[str, tuple[str, ...]] = {
    WelcomeMessage.Attachment.IMAGE: ("pic_url",),
    WelcomeMessage.Attachment.LINK: ("title", "url"),
    WelcomeMessage.Attachment.MINIPROGRAM: ("title", "appid", "page", "pic_media_id"),
}
ATTACHMENT_OPTIONAL: dict[str, tuple[str, ...]] = {WelcomeMessage.Attachment.LINK: ("picurl", "desc")}


def welcome_attachment_validate(*, attachment: str, data) -> dict:
    """The attachment's fields as WeCom wants them, or a clear error naming what is missing."""
    if not attachment:
        return {}
    if attachment not in ATTACHMENT_FIELDS:
        raise AcquisitionError(_("未知的附件类型：%(kind)s") % {"kind": attachment})
    if not isinstance(data, dict):
        raise AcquisitionError(_("附件内容必须是 JSON 对象"))
    required = ATTACHMENT_FIELDS[attachment]
    missing = [name for name in required if not str(data.get(name) or "").strip()]
    if missing:
        raise AcquisitionError(_("附件缺少字段：%(fields)s") % {"fields": "、".join(missing)})
    allowed = required + ATTACHMENT_OPTIONAL.get(attachment, ())
    return {name: str(data[name]) for name in allowed if data.get(name)}


def welcome_text_validate(*, text: str) -> str:
    """Only our three variables: a typo such as {客户名称} would reach the customer as it is."""
    unknown = sorted(set(re.findall(r"\{[^{}]*\}", text)) - set(WELCOME_VARIABLES))
    if unknown:
        raise AcquisitionError(_("欢迎语里有无法识别的变量：%(unknown)s；可用变量：%(known)s") % {
            "unknown": "、".join(unknown), "known": " ".join(WELCOME_VARIABLES)})
    return text


def welcome_text_render(*, text: str, values: dict[str, str]) -> str:
    # Plain replacement, not str.format: copy may contain other braces.
    for variable in WELCOME_VARIABLES:
        text = text.replace(variable, values.get(variable, ""))
    return text


def welcome_payload(*, welcome: WelcomeMessage, values: dict[str, str]) -> dict:
    """What send_welcome_msg receives (without the code): text with variables filled, one attachment."""
    payload: dict = {}
    content = welcome_text_render(text=welcome.text, values=values).strip()
    if content:
        payload["text"] = {"content": content}
    fields = welcome_attachment_validate(attachment=welcome.attachment, data=welcome.attachment_data)
    if fields:
        payload["attachments"] = [{"msgtype": welcome.attachment, welcome.attachment: fields}]
    return payload


def welcome_preview(*, welcome: WelcomeMessage) -> str:
    return welcome_text_render(text=welcome.text, values=SAMPLE_VALUES)


CLAIM_SQL = """
INSERT INTO customers_welcomedelivery (relationship_id, welcome_id, status, reason, event_at, sent_at)
VALUES (%s, %s, 'skipped', %s, %s, now())
ON CONFLICT (relationship_id) DO NOTHING
RETURNING id
"""


def _delivery_claim(*, relationship: Relationship, welcome: WelcomeMessage | None, event_at: datetime) -> int | None:
    """Insert the delivery row first: a second run for the same relationship finds it and sends nothing."""
    with connection.cursor() as cursor:
        cursor.execute(CLAIM_SQL, [relationship.pk, welcome.pk if welcome else None, _("发送中"), event_at])
        row = cursor.fetchone()
    return row[0] if row else None


def _delivery_finish(delivery_id: int, *, relationship: Relationship, welcome: WelcomeMessage | None,
                     event_at: datetime, status: str, reason: str, latency_ms: int | None) -> WelcomeDelivery:
    fields = {"status": status, "reason": reason[:255], "latency_ms": latency_ms, "sent_at": timezone.now()}
    WelcomeDelivery.objects.filter(pk=delivery_id).update(**fields)
    return WelcomeDelivery(pk=delivery_id, relationship=relationship, welcome=welcome, event_at=event_at, **fields)


def _welcome_values(relationship: Relationship) -> dict[str, str]:
    store = relationship.store or relationship.staff.store
    return {"{客户昵称}": relationship.customer.name, "{员工姓名}": relationship.staff.name,
            "{门店名称}": store.name if store else ""}


def welcome_send(*, relationship: Relationship, welcome: WelcomeMessage | None, welcome_code: str,
                 event_at: datetime) -> WelcomeDelivery:
    """Send once, inside the 20-second window, and record why whenever it is not sent."""
    delivery_id = _delivery_claim(relationship=relationship, welcome=welcome, event_at=event_at)
    if delivery_id is None:
        return WelcomeDelivery.objects.get(relationship=relationship)  # handled before: never twice
    age = timezone.now() - event_at
    status, reason, latency = WelcomeDelivery.Status.SKIPPED, "", None
    if welcome is None:
        reason = _("渠道和活码都没有配置欢迎语")
    elif not welcome_code:
        reason = _("添加事件中没有欢迎语 code（活码在企业微信里自带欢迎语，或客户并非新添加）")
    elif age > WELCOME_WINDOW:
        reason = _("处理时距客户添加已过 %(s)d 秒，超过企业微信 20 秒的发送时限，未调用企业微信") % {
            "s": age.total_seconds()}
    else:
        try:
            payload = welcome_payload(welcome=welcome, values=_welcome_values(relationship))
            wecom_call("externalcontact/send_welcome_msg", data={"welcome_code": welcome_code, **payload},
                       caller="acquisition.welcome")
            status = WelcomeDelivery.Status.SENT
            latency = max(0, int((timezone.now() - event_at).total_seconds() * 1000))
        except AcquisitionError as exc:
            status, reason = WelcomeDelivery.Status.FAILED, _("欢迎语配置有误：%(error)s") % {"error": exc}
        except WeComError as exc:
            status, reason = WelcomeDelivery.Status.FAILED, wecom_error_text(exc)
    return _delivery_finish(delivery_id, relationship=relationship, welcome=welcome, event_at=event_at,
                            status=status, reason=reason, latency_ms=latency)
