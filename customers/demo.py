"""The customers part of the demo (``seed_demo``): tags, a channel inventory, welcome messages and codes.

Everything WeCom holds (tag groups and tags, contact-way codes) is made through the same services the
admin uses, so it exists in the sandbox's WeCom exactly as it would in a real corp; channels and
welcome messages are the portal's own rows. Idempotent: a second run finds every object by its
natural key (tag names after a pull from WeCom, channel codes, welcome names, code states) and makes
nothing twice, neither here nor in WeCom. What an operator changed in the admin since is left alone.

The first customers are not made here: they arrive later, when the sandbox plays customers scanning
these codes (``scenario/arrivals``, which ``make run`` asks for once the web server and worker are up).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model

from customers.acquisition.errors import AcquisitionError
from customers.acquisition.services import (
    channel_code_validate,
    contact_way_create,
    contact_ways_create_for_region,
    contact_ways_provision_run,
)
from customers.acquisition.welcome import welcome_attachment_validate, welcome_text_validate
from customers.models import Channel, ContactWay, Stage, Tag, TagGroup, WelcomeMessage
from customers.tags.services import TagError, tag_create, tag_group_create, tags_pull
from portal.demo import DemoSeedError
from portal.wecom.gateway import WeComError
from stores.access.scoping import region_ids_with_descendants
from stores.models import Region, Staff, Store

# (group, order, [(tag, stage the tag advances a customer to)]); WeCom shows higher orders first.
if TYPE_CHECKING:
    from portal.models import User

TAG_GROUPS: list[tuple[str, int, list[tuple[str, str]]]] = [
    ("来源渠道", 30, [("门店海报", ""), ("桌牌", ""), ("小票", ""), ("电商包裹卡", ""), ("直播", ""),
                      ("朋友推荐", "")]),
    ("兴趣", 20, [("新品尝鲜", ""), ("优惠活动", ""), ("会员积分", ""), ("外卖到家", "")]),
    ("意向", 10, [("高意向", Stage.INTERESTED), ("待回访", "")]),
]

DEFAULT_WELCOME = "默认欢迎语"
PARCEL_WELCOME = "包裹卡欢迎语"
# name → (text, attachment, attachment data); the variables are filled per customer when sent.
WELCOMES: dict[str, tuple[str, str, dict]] = {
    DEFAULT_WELCOME: (
        "{客户昵称}您好！我是{门店名称}的{员工姓名}，很高兴认识您～新人礼已经为您准备好，点开下面的链接领取，"
        "到店出示即可使用。有任何需要随时找我！",
        WelcomeMessage.Attachment.LINK,
        {"title": "新人礼：到店满 50 减 10", "url": "https://xiaoer.example.com/gift/new",
         "picurl": "https://xiaoer.example.com/static/gift.png", "desc": "加好友专享，7 天内有效"}),
    PARCEL_WELCOME: (
        "感谢{客户昵称}的支持！我是{门店名称}的{员工姓名}，您的包裹收到了吗？收货有任何问题直接回复我，"
        "下次到店报手机号还能积分哦～",
        WelcomeMessage.Attachment.IMAGE,
        {"pic_url": "https://xiaoer.example.com/static/parcel-thanks.png"}),
}

# (code, name, kind, goal, auto-tags as (group, tag), welcome name)
CHANNELS: list[tuple[str, str, str, int, list[tuple[str, str]], str]] = [
    ("POSTER", "门店海报", Channel.Kind.POSTER, 300, [("来源渠道", "门店海报")], DEFAULT_WELCOME),
    ("TABLE", "桌牌", Channel.Kind.TABLE_CARD, 200, [("来源渠道", "桌牌"), ("兴趣", "优惠活动")], DEFAULT_WELCOME),
    ("RECEIPT", "小票", Channel.Kind.RECEIPT, 150, [("来源渠道", "小票")], DEFAULT_WELCOME),
    ("PARCEL", "电商包裹卡", Channel.Kind.PARCEL_CARD, 500, [("来源渠道", "电商包裹卡"), ("意向", "高意向")],
     PARCEL_WELCOME),
    ("LIVE", "直播", Channel.Kind.LIVE, 1000, [("来源渠道", "直播"), ("兴趣", "新品尝鲜")], DEFAULT_WELCOME),
    ("REFER", "朋友推荐", Channel.Kind.REFERRAL, 100, [("来源渠道", "朋友推荐")], DEFAULT_WELCOME),
]
CHANNEL_STORE_CODES = ("TABLE", "PARCEL")  # the channels that get a code in every store
STAFF_CODE_STORES = 3  # 一人一码 for the guides of the first few stores


@dataclass(frozen=True)
class CustomersSeeded:
    tag_groups: int
    tags: int
    channels: int
    welcomes: int
    store_codes: int
    staff_codes: int
    channel_codes: int
    pending_codes: int  # rows WeCom refused or did not answer for (each with its reason on last_error)

    def summary(self) -> str:
        text = (f"demo customers: {self.tag_groups} tag groups / {self.tags} tags, {self.channels} channels, "
                f"{self.welcomes} welcome messages, codes: {self.store_codes} store, {self.staff_codes} staff "
                f"(一人一码), {self.channel_codes} channel×store")
        return text + (f", {self.pending_codes} not created (see 渠道活码 → 最近错误)" if self.pending_codes else "")


def customers_demo_seed(*, staff_code_stores: int = STAFF_CODE_STORES,
                        channel_store_codes: tuple[str, ...] = CHANNEL_STORE_CODES,
                        by: User | None = None) -> CustomersSeeded:
    """Tags, channels, welcome messages and codes for the demo organisation, made through WeCom (the sandbox).

    Codes: a store code (rotating among the store's active staff) for every open store, a code per guide
    (一人一码) in the first ``staff_code_stores`` stores, and a code per store for each channel in
    ``channel_store_codes``. Running it again changes nothing and creates nothing twice in WeCom.
    """
    tags = _tags_seed(by=by)
    welcomes = _welcomes_seed()
    channels = _channels_seed(tags=tags, welcomes=welcomes)
    default = welcomes[DEFAULT_WELCOME]
    stores = list(Store.objects.open().order_by("code"))
    for store in stores:
        contact_way_create(kind=ContactWay.Kind.STORE, store=store, welcome=default, by=by)
    guides = Staff.objects.active().filter(store__in=stores[:max(0, staff_code_stores)],
                                           position=Staff.Position.GUIDE).select_related("store").order_by("userid")
    for guide in guides:
        assert guide.store is not None  # guides of these stores
        contact_way_create(kind=ContactWay.Kind.STAFF, store=guide.store, staff=guide, welcome=default, by=by)
    for code in channel_store_codes:
        _channel_codes_seed(channel=channels[code], by=by)
    return _seeded_counts()


def _tags_seed(*, by: User | None) -> dict[tuple[str, str], Tag]:
    """The demo's tag groups and tags, created in WeCom first; existing ones (found after a pull) are kept."""
    tags_pull()  # WeCom may already have them (a sandbox kept from an earlier run): never create twice
    for group_name, order, specs in TAG_GROUPS:
        group = TagGroup.objects.filter(name=group_name, deleted=False).first()
        names = [name for name, _stage in specs]
        if group is None:
            group = tag_group_create(name=group_name, tag_names=names, order=order, by=by)
        else:
            present = set(Tag.objects.filter(group=group, deleted=False).values_list("name", flat=True))
            for name in names:
                if name not in present:
                    tag_create(group=group, name=name, by=by)
        for name, stage in specs:
            if stage:  # ours alone (WeCom has no such field); an operator's own choice is kept
                Tag.objects.filter(group=group, name=name, deleted=False, advances_to="").update(advances_to=stage)
    found = Tag.objects.filter(deleted=False, group__deleted=False,
                               group__name__in=[g for g, _o, _s in TAG_GROUPS]).select_related("group")
    return {(tag.group.name, tag.name): tag for tag in found}


def _welcomes_seed() -> dict[str, WelcomeMessage]:
    found = {}
    for name, (text, attachment, data) in WELCOMES.items():
        welcome = WelcomeMessage.objects.filter(name=name).order_by("pk").first()
        if welcome is None:
            welcome = WelcomeMessage.objects.create(
                name=name, text=welcome_text_validate(text=text), attachment=attachment,
                attachment_data=welcome_attachment_validate(attachment=attachment, data=data))
        found[name] = welcome
    return found


def _channels_seed(*, tags: dict[tuple[str, str], Tag], welcomes: dict[str, WelcomeMessage]) -> dict[str, Channel]:
    owner = get_user_model().objects.filter(username="hq_operator").first()
    found = {}
    for code, name, kind, goal, auto_tags, welcome in CHANNELS:
        channel, created = Channel.objects.get_or_create(code=channel_code_validate(code=code), defaults={
            "name": name, "kind": kind, "goal": goal, "owner": owner, "welcome": welcomes[welcome]})
        if created:
            channel.auto_tags.add(*[tags[key] for key in auto_tags if key in tags])
        found[code] = channel
    return found


def _channel_codes_seed(*, channel: Channel, by: User | None) -> None:
    """A code per open store for ``channel``: the region action (one insert, then the codes made in WeCom).

    Run here rather than left to the worker, so the codes exist when seed_demo ends; a region with
    nothing missing or pending is skipped, so a rerun starts no job at all.
    """
    for region in Region.objects.filter(parent__isnull=True).order_by("code"):
        stores = Store.objects.open().filter(region_id__in=region_ids_with_descendants(region_ids=[region.pk]))
        ways = ContactWay.objects.filter(kind=ContactWay.Kind.CHANNEL_STORE, channel=channel, store__in=stores)
        missing = stores.exclude(pk__in=ways.values("store_id")).exists()
        if not missing and not ways.filter(config_id__isnull=True, active=True).exists():
            continue
        result = contact_ways_create_for_region(region=region, channel=channel, kind=ContactWay.Kind.CHANNEL_STORE,
                                                by=by)
        contact_ways_provision_run(run_id=result.run.pk)


def _seeded_counts() -> CustomersSeeded:
    ways = ContactWay.objects.filter(active=True)
    made = ways.filter(config_id__isnull=False)
    return CustomersSeeded(
        tag_groups=TagGroup.objects.filter(deleted=False, name__in=[g for g, _o, _s in TAG_GROUPS]).count(),
        tags=Tag.objects.filter(deleted=False, group__deleted=False,
                                group__name__in=[g for g, _o, _s in TAG_GROUPS]).count(),
        channels=Channel.objects.filter(code__in=[c[0] for c in CHANNELS]).count(),
        welcomes=WelcomeMessage.objects.filter(name__in=list(WELCOMES)).count(),
        store_codes=made.filter(kind=ContactWay.Kind.STORE).count(),
        staff_codes=made.filter(kind=ContactWay.Kind.STAFF).count(),
        channel_codes=made.filter(kind=ContactWay.Kind.CHANNEL_STORE).count(),
        pending_codes=ways.filter(config_id__isnull=True).count(),
    )


def customers_demo_run() -> str:
    """seed_demo's customers step: the demo's tags, channels and codes, or why they are incomplete."""

    try:
        return customers_demo_seed().summary()
    except WeComError as exc:
        raise DemoSeedError(f"WeCom sandbox not reachable ({exc}); run seed_demo again once it is up to create "
                            "the demo tags, channels and codes") from exc
    except (TagError, AcquisitionError) as exc:  # WeCom refused something: the demo runs without it
        raise DemoSeedError(f"demo tags/channels/codes incomplete: {exc}") from exc
