"""Acquisition's errors, and WeCom's refusals of a contact-way call in words a user reads."""

from __future__ import annotations

from django.utils.translation import gettext as _

from portal.errors import DomainError
from portal.wecom.gateway import WeComError, WeComUnavailable


class AcquisitionError(DomainError):
    """Bad input for an acquisition action, with a message a user can read."""


# -- WeCom's error codes in plain Chinese ---------------------------------------------------------
WECOM_ERRORS: dict[int | None, str] = {  # keyed like WeComError.errcode (None: an answer without one)
    40003: "员工账号（userid）在企业微信中不存在",
    40058: "参数不合法",
    40096: "外部联系人 ID 无效",
    40098: "成员尚未实名认证，无法使用客户联系",
    40099: "员工的客户数已达上限",
    41041: "活码的接待成员超过 100 人",
    41044: "活码在企业微信中不存在（可能已被删除）",
    41045: "企业的活码数量已达上限",
    41049: "缺少欢迎语 code",
    41050: "欢迎语 code 无效或已过期：必须在客户添加后 20 秒内发送",
    41051: "欢迎语 code 已被使用或客户已开始聊天（每个 code 只能用一次）",
    41065: "欢迎语附件类型无效",
    45009: "企业微信接口调用频率超限",
    45033: "企业微信接口并发调用超限",
    60111: "员工账号（userid）在企业微信中不存在",
    84061: "客户已不是该员工的好友",
    84074: "员工没有客户联系权限（可能已停用）",
}


def wecom_error_text(exc: WeComError) -> str:
    """A reason a store manager can read, with WeCom's own code and message after it."""
    if isinstance(exc, WeComUnavailable):
        plain = _("企业微信暂时无法访问")
    else:
        plain = WECOM_ERRORS.get(exc.errcode, _("企业微信返回错误"))
    return f"{plain}（{exc.errcode}: {exc.errmsg}）"[:255]
