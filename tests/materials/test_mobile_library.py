"""The library on the phone: staff browse and search what they may use now, preview, download, and copy a
script filled for them and their customer; every view, download and copy is counted."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.mobile import library
from customers.models import Relationship
from materials.library.models import Folder, Material, MaterialKind, MaterialTag
from materials.library.scripts import ScriptContext, script_fill
from materials.library.services import VersionContent, material_archive, material_create, material_version_add
from materials.models import MaterialUse
from materials.usage.services import material_uses_flush
from stores.access.services import access_grant
from stores.models import Role, Store
from tests.factories import CustomerFactory, UserFactory
from tests.materials.files_fixtures import jpeg_bytes, mp4_bytes, pdf_bytes
from tests.materials.helpers import material_published, script_published

pytestmark = pytest.mark.django_db


def page(client, user, name="mobile:materials", *args, **params):
    client.force_login(user)
    return client.get(reverse(name, args=args), params)


def listed(client, user, **params) -> list[str]:
    response = page(client, user, **params)
    assert response.status_code == 200
    return [m.title for m in response.context["materials"]]


@pytest.fixture
def library_of(org, hq_operator):
    """The brand's script for everyone, one for 华东 (stores A, A2), one for 华南 (B, C), one for store B only."""
    return {
        "all": script_published(by=hq_operator, title="全品牌开业话术", everyone=True),
        "east": script_published(by=hq_operator, title="华东会员日话术", regions=[org.east]),
        "south": script_published(by=hq_operator, title="华南会员日话术", regions=[org.south]),
        "store_b": script_published(by=hq_operator, title="天河店专属话术", stores=[org.store_b]),
    }


@pytest.fixture
def franchisee_two_owner(org):
    user = UserFactory(username="franchisee_two")
    access_grant(user=user, role=Role.FRANCHISEE_OWNER, franchisee=org.franchisee_two)
    return user


@pytest.fixture
def no_role_user(org):
    return UserFactory(username="nobody")


@pytest.fixture
def local_of_two(franchisee_two_owner):
    """A franchisee's own material: it reaches only that franchisee's stores."""
    return script_published(by=franchisee_two_owner, title="二号加盟本地话术", text="二号加盟的{门店名称}欢迎您")


@pytest.fixture
def photo_of_b(org, hq_operator):
    return material_published(by=hq_operator, kind=MaterialKind.IMAGE, title="天河店海报",
                              content=VersionContent(data=jpeg_bytes(), file_name="天河.jpg"), stores=[org.store_b])


@pytest.fixture
def photo_for_all(hq_operator):
    return material_published(by=hq_operator, kind=MaterialKind.IMAGE, title="双十一海报",
                              content=VersionContent(data=jpeg_bytes(), file_name="双十一.jpg"), everyone=True)


# -- who sees what -------------------------------------------------------------------------------------------
def test_store_staff_see_the_brands_and_their_regions_materials_only(client, staff_of_a, library_of):
    assert sorted(listed(client, staff_of_a)) == ["全品牌开业话术", "华东会员日话术"]


def test_a_store_manager_sees_what_their_store_is_reached_by(client, store_manager_of_a, library_of):
    assert sorted(listed(client, store_manager_of_a)) == ["全品牌开业话术", "华东会员日话术"]


def test_a_region_manager_sees_their_regions_materials_not_another_regions(client, region_manager_east, library_of):
    assert sorted(listed(client, region_manager_east)) == ["全品牌开业话术", "华东会员日话术"]


def test_a_franchisee_owner_sees_their_stores_materials_and_not_another_franchisees_own(
        client, franchisee_owner, franchisee_two_owner, library_of, local_of_two):
    assert sorted(listed(client, franchisee_owner)) == ["全品牌开业话术", "华东会员日话术"]
    assert "二号加盟本地话术" in listed(client, franchisee_two_owner)


def test_hq_without_a_store_sees_every_usable_material(client, hq_operator, library_of, local_of_two):
    assert sorted(listed(client, hq_operator)) == sorted(
        ["全品牌开业话术", "华东会员日话术", "华南会员日话术", "天河店专属话术", "二号加盟本地话术"])


def test_a_departed_staff_member_is_sent_to_sign_in_and_opens_nothing(client, departed_staff_of_a, library_of):
    client.force_login(departed_staff_of_a)
    for url in (reverse("mobile:materials"), reverse("mobile:material", args=[library_of["all"].pk])):
        response = client.get(url)
        assert response.status_code == 302 and reverse("mobile:login") in response["Location"]


def test_a_login_without_a_role_sees_an_empty_library(client, no_role_user, library_of):
    response = page(client, no_role_user)
    assert response.status_code == 200 and response.context["materials"] == []
    assert "暂无可用素材" in response.content.decode()
    assert page(client, no_role_user, "mobile:material", library_of["all"].pk).status_code == 404


def test_the_phone_asks_anonymous_visitors_to_sign_in(client, library_of):
    response = client.get(reverse("mobile:material", args=[library_of["all"].pk]))
    assert response.status_code == 302 and reverse("mobile:login") in response["Location"]


ROUTES = [("get", "mobile:material"), ("get", "mobile:material_file"), ("get", "mobile:material_thumbnail"),
          ("post", "mobile:material_used")]


@pytest.mark.parametrize(("method", "name"), ROUTES)
@pytest.mark.parametrize(("persona", "target"), [("staff_of_a", "photo_of_b"), ("region_manager_east", "photo_of_b"),
                                                 ("store_manager_of_a", "local_of_two"),
                                                 ("franchisee_owner", "local_of_two")])
def test_another_scopes_material_by_url_guessing_is_not_found(client, request, persona, target, method, name, queue):
    client.force_login(request.getfixturevalue(persona))
    material = request.getfixturevalue(target)
    call = getattr(client, method)
    theirs = call(reverse(name, args=[material.pk]), {"action": "copy"})
    missing = call(reverse(name, args=[material.pk + 10_000]), {"action": "copy"})
    assert theirs.status_code == missing.status_code == 404
    assert material_uses_flush() == 0


def test_the_materials_own_routes_work_for_the_store_it_is_for(client, org, photo_of_b, queue):
    """The other side of the 404s above: the same URLs answer store B's guide."""
    guide_b = UserFactory(username="guide_b")
    access_grant(user=guide_b, role=Role.STORE_STAFF, store=org.store_b, staff=org.guide_b)
    client.force_login(guide_b)
    for name in ("mobile:material", "mobile:material_file", "mobile:material_thumbnail"):
        assert client.get(reverse(name, args=[photo_of_b.pk])).status_code == 200, name
    assert client.post(reverse("mobile:material_used", args=[photo_of_b.pk]), {"action": "share"}).status_code == 204


# -- what is usable now --------------------------------------------------------------------------------------
def test_an_expired_material_vanishes_from_the_list_and_its_page(client, staff_of_a, photo_for_all):
    assert "双十一海报" in listed(client, staff_of_a)
    Material.objects.filter(pk=photo_for_all.pk).update(expires_at=timezone.now() - timedelta(minutes=1))

    assert "双十一海报" not in listed(client, staff_of_a)
    for name in ("mobile:material", "mobile:material_file", "mobile:material_thumbnail"):
        assert page(client, staff_of_a, name, photo_for_all.pk).status_code == 404, name


def test_an_archived_material_vanishes_from_the_list_and_its_page(client, staff_of_a, hq_operator, library_of):
    material_archive(material=library_of["all"], by=hq_operator)

    assert "全品牌开业话术" not in listed(client, staff_of_a)
    assert page(client, staff_of_a, "mobile:material", library_of["all"].pk).status_code == 404


def test_a_draft_is_not_on_the_phone(client, staff_of_a, hq_operator):
    draft = material_create(by=hq_operator, kind=MaterialKind.SCRIPT, title="还没发布的话术")
    material_version_add(material=draft, by=hq_operator, content=VersionContent(text="草稿内容"))

    assert "还没发布的话术" not in listed(client, staff_of_a)
    assert page(client, staff_of_a, "mobile:material", draft.pk).status_code == 404


def test_a_material_not_yet_valid_is_not_on_the_phone(client, staff_of_a, library_of):
    Material.objects.filter(pk=library_of["all"].pk).update(valid_from=timezone.now() + timedelta(days=1))
    assert "全品牌开业话术" not in listed(client, staff_of_a)


def test_each_row_says_in_how_many_days_the_material_expires(client, staff_of_a, hq_operator):
    script_published(by=hq_operator, title="限时话术", everyone=True)
    Material.objects.filter(title="限时话术").update(expires_at=timezone.now() + timedelta(days=3))

    assert "3天后到期" in page(client, staff_of_a).content.decode()


def test_the_expiry_label_reads_today_days_or_a_date():
    now = timezone.make_aware(timezone.datetime(2026, 12, 1, 10, 0))
    assert library.expiry_label(None, now=now) == ""
    assert library.expiry_label(now + timedelta(hours=5), now=now) == "今天到期"
    assert library.expiry_label(now + timedelta(days=1), now=now) == "1天后到期"
    assert library.expiry_label(now + timedelta(days=60), now=now) == "2027-01-30 到期"


# -- search, filters, paging -----------------------------------------------------------------------------------
def test_search_finds_a_script_by_its_text(client, staff_of_a, hq_operator, library_of):
    script_published(by=hq_operator, title="周三活动", text="{客户称呼}，本周三会员日积分翻倍", everyone=True)

    assert listed(client, staff_of_a, q="积分翻倍") == ["周三活动"]


def test_search_finds_nothing_of_another_scope(client, staff_of_a, library_of):
    response = page(client, staff_of_a, q="华南")
    assert response.context["materials"] == []
    assert "没有找到相关素材" in response.content.decode()


def test_the_list_filters_by_kind(client, staff_of_a, library_of, photo_for_all):
    assert listed(client, staff_of_a, kind="image") == ["双十一海报"]
    assert len(listed(client, staff_of_a, kind="no-such-kind")) == 3  # an unknown kind filters nothing


def test_the_list_filters_by_folder_and_by_tag(client, staff_of_a, hq_operator):
    folder = Folder.objects.create(name="节日")
    tag = MaterialTag.objects.create(name="会员")
    material_published(by=hq_operator, kind=MaterialKind.SCRIPT, title="春节话术", folder=folder,
                       content=VersionContent(text="新年好"), everyone=True)
    material_published(by=hq_operator, kind=MaterialKind.SCRIPT, title="会员话术", tags=[tag],
                       content=VersionContent(text="会员好"), everyone=True)

    assert listed(client, staff_of_a, folder=folder.pk) == ["春节话术"]
    assert listed(client, staff_of_a, tag=tag.pk) == ["会员话术"]
    assert sorted(listed(client, staff_of_a, folder="x", tag="999999")) == ["会员话术", "春节话术"]


def test_the_list_is_newest_first_and_paged(client, staff_of_a, hq_operator, monkeypatch):
    monkeypatch.setattr(library, "PAGE_SIZE", 2)
    for n in range(3):
        script_published(by=hq_operator, title=f"话术{n}", everyone=True)

    first = page(client, staff_of_a)
    assert [m.title for m in first.context["materials"]] == ["话术2", "话术1"]
    assert first.context["next_query"] == "?page=2" and not first.context["previous_query"]
    second = page(client, staff_of_a, page=2)
    assert [m.title for m in second.context["materials"]] == ["话术0"]
    assert not second.context["next_query"]
    assert page(client, staff_of_a, page="abc").context["materials"][0].title == "话术2"


def test_the_list_reads_in_a_fixed_number_of_queries_however_many_rows(
        client, staff_of_a, hq_operator, django_assert_max_num_queries, org):
    for n in range(3):
        material_published(by=hq_operator, kind=MaterialKind.IMAGE, title=f"海报{n}", everyone=True,
                           content=VersionContent(data=jpeg_bytes(), file_name=f"{n}.jpg"))
    client.force_login(staff_of_a)
    client.get(reverse("mobile:materials"))  # the session and the scope, as any later request
    with django_assert_max_num_queries(12) as few:
        client.get(reverse("mobile:materials"), {"q": "海报"})
    for n in range(3, 15):
        script_published(by=hq_operator, title=f"海报话术{n}", everyone=True)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(reverse("mobile:materials"), {"q": "海报"})
    assert len(response.context["materials"]) == 15


# -- the material's page ---------------------------------------------------------------------------------------
@pytest.fixture
def store_a_details(org):
    Store.objects.filter(pk=org.store_a.pk).update(address="上海市徐汇区漕溪北路1号", opening_hours="10:00-22:00")


@pytest.fixture
def full_script(hq_operator):
    return script_published(by=hq_operator, title="到店邀约", everyone=True,
                            text="{客户称呼}您好，我是{门店名称}的{导购姓名}，地址{门店地址}，营业时间{营业时间}")


def test_a_script_shows_its_variables_filled_for_the_staff_member_and_their_store(
        client, staff_of_a, full_script, store_a_details):
    response = page(client, staff_of_a, "mobile:material", full_script.pk)
    assert response.context["script"] == ("您您好，我是上海徐汇店的李导购，地址上海市徐汇区漕溪北路1号，"
                                          "营业时间10:00-22:00")
    assert 'id="copy-script"' in response.content.decode()


def test_a_script_names_the_staff_members_own_customer(client, org, staff_of_a, full_script):
    customer = CustomerFactory(staff=org.guide_a, name="陈小姐")
    response = page(client, staff_of_a, "mobile:material", full_script.pk, customer=customer.pk)
    assert response.context["script"].startswith("陈小姐您好")
    assert "已按客户“陈小姐”填写" in response.content.decode()


def test_a_script_calls_the_customer_by_the_remark_the_staff_member_gave_them(client, org, staff_of_a, full_script):
    customer = CustomerFactory(staff=org.guide_a, name="wx_8812")
    Relationship.objects.filter(customer=customer, staff=org.guide_a).update(remark="陈姐")
    response = page(client, staff_of_a, "mobile:material", full_script.pk, customer=customer.pk)
    assert response.context["script"].startswith("陈姐您好")


def test_another_staff_members_customer_is_ignored_as_if_none_were_named(client, org, staff_of_a, full_script):
    theirs = CustomerFactory(staff=org.guide_b, name="广州的王先生")
    url = reverse("mobile:material", args=[full_script.pk])
    client.force_login(staff_of_a)
    foreign = client.get(url, {"customer": theirs.pk})
    missing = client.get(url, {"customer": theirs.pk + 10_000})
    assert foreign.status_code == 200 and foreign.context["script"].startswith("您您好")
    assert "广州的王先生" not in foreign.content.decode()
    assert foreign.context["script"] == missing.context["script"] and not foreign.context["customer_name"]


def test_hq_without_a_store_sees_the_store_variables_as_written(client, hq_operator, full_script):
    script = page(client, hq_operator, "mobile:material", full_script.pk).context["script"]
    assert script == "您您好，我是{门店名称}的{导购姓名}，地址{门店地址}，营业时间{营业时间}"


def test_unknown_variables_stay_as_written():
    assert script_fill(text="{客户称呼}，凭{优惠码}到店，{ 门店名称 }", context=ScriptContext(customer_name="陈姐")) \
        == "陈姐，凭{优惠码}到店，{ 门店名称 }"


def test_a_moments_template_with_an_unknown_variable_keeps_it(client, staff_of_a, hq_operator):
    moments = material_published(by=hq_operator, kind=MaterialKind.MOMENTS, title="朋友圈文案", everyone=True,
                                 content=VersionContent(text="{门店名称}新品上市，口令{暗号}"))
    assert page(client, staff_of_a, "mobile:material", moments.pk).context["script"] == "上海徐汇店新品上市，口令{暗号}"


def test_a_script_is_shown_escaped(client, staff_of_a, hq_operator):
    script = script_published(by=hq_operator, title="带符号", text="<b>{客户称呼}</b>", everyone=True)
    body = page(client, staff_of_a, "mobile:material", script.pk).content.decode()
    assert "&lt;b&gt;您&lt;/b&gt;" in body and "<b>您" not in body


def test_an_image_is_previewed_in_the_page_and_downloads_as_a_file(client, staff_of_a, photo_for_all):
    body = page(client, staff_of_a, "mobile:material", photo_for_all.pk).content.decode()
    file_url = reverse("mobile:material_file", args=[photo_for_all.pk])
    assert f'src="{file_url}?inline=1"' in body and f'href="{file_url}"' in body

    inline = client.get(file_url, {"inline": "1"})
    assert inline.status_code == 200 and inline["Content-Disposition"].startswith("inline")
    download = client.get(file_url)
    assert download["Content-Disposition"].startswith("attachment") and "filename*=utf-8''" in \
        download["Content-Disposition"]
    assert b"".join(download.streaming_content)[:2] == b"\xff\xd8"  # the JPEG itself


def test_a_pdf_shows_its_first_page_and_a_download_never_inline(client, staff_of_a, hq_operator):
    pdf = material_published(by=hq_operator, kind=MaterialKind.FILE, title="产品手册", everyone=True,
                             content=VersionContent(data=pdf_bytes(pages=3), file_name="手册.pdf"))
    response = page(client, staff_of_a, "mobile:material", pdf.pk)
    body = response.content.decode()
    assert reverse("mobile:material_thumbnail", args=[pdf.pk]) in body and "3 页" in body
    thumbnail = client.get(reverse("mobile:material_thumbnail", args=[pdf.pk]))
    assert thumbnail.status_code == 200 and thumbnail["Content-Type"] == "image/jpeg"
    asked_inline = client.get(reverse("mobile:material_file", args=[pdf.pk]), {"inline": "1"})
    assert asked_inline["Content-Disposition"].startswith("attachment")  # a PDF never opens in the portal's origin


def test_a_link_shows_as_a_card_that_opens_the_link(client, staff_of_a, hq_operator):
    link = material_published(by=hq_operator, kind=MaterialKind.LINK, title="新品文章", everyone=True,
                              content=VersionContent(link_url="https://example.com/new", link_title="秋季新品",
                                                     text="三款新品到店"))
    body = page(client, staff_of_a, "mobile:material", link.pk).content.decode()
    assert 'id="link-card" href="https://example.com/new"' in body and "秋季新品" in body
    assert 'id="copy-script"' not in body


def test_a_video_plays_in_the_page_with_its_first_frame_as_poster(client, staff_of_a, hq_operator):
    video = material_published(by=hq_operator, kind=MaterialKind.VIDEO, title="新品视频", everyone=True,
                               content=VersionContent(data=mp4_bytes(), file_name="新品.mp4"))
    body = page(client, staff_of_a, "mobile:material", video.pk).content.decode()
    file_url, thumbnail_url = (reverse(f"mobile:{n}", args=[video.pk]) for n in ("material_file", "material_thumbnail"))
    assert f'<video src="{file_url}?inline=1" poster="{thumbnail_url}"' in body and 'preload="none"' in body
    assert client.get(thumbnail_url)["Content-Type"] == "image/jpeg"


def test_a_mini_program_card_shows_its_title_appid_and_page(client, staff_of_a, hq_operator):
    card = material_published(by=hq_operator, kind=MaterialKind.MINIPROGRAM, title="会员小程序", everyone=True,
                              content=VersionContent(data=jpeg_bytes(), file_name="封面.jpg", link_title="领会员券",
                                                     miniprogram_appid="wx1234567890abcdef",
                                                     miniprogram_page="pages/coupon/index"))
    card_html = page(client, staff_of_a, "mobile:material", card.pk).content.decode()
    card_html = card_html[card_html.index('id="miniprogram-card"'):]
    assert "领会员券" in card_html and "wx1234567890abcdef" in card_html and "pages/coupon/index" in card_html


def test_a_script_has_no_file_to_download(client, staff_of_a, library_of):
    material = library_of["all"]
    assert page(client, staff_of_a, "mobile:material_file", material.pk).status_code == 404
    assert page(client, staff_of_a, "mobile:material_thumbnail", material.pk).status_code == 404


# -- recording use ---------------------------------------------------------------------------------------------
def uses() -> list[tuple]:
    return sorted(MaterialUse.objects.values_list("material_id", "action", "store_id", "staff_id", "user_id"))


def test_opening_a_material_is_recorded_as_a_view_by_the_staff_member_in_their_store(
        client, org, staff_of_a, library_of, queue):
    page(client, staff_of_a, "mobile:material", library_of["all"].pk)
    material_uses_flush()
    assert uses() == [(library_of["all"].pk, "view", org.store_a.pk, org.guide_a.pk, staff_of_a.pk)]


def test_copying_a_script_is_recorded(client, org, staff_of_a, library_of, queue):
    client.force_login(staff_of_a)
    response = client.post(reverse("mobile:material_used", args=[library_of["all"].pk]), {"action": "copy"})
    assert response.status_code == 204
    assert material_uses_flush() == 1
    assert uses() == [(library_of["all"].pk, "copy", org.store_a.pk, org.guide_a.pk, staff_of_a.pk)]


def test_a_download_is_recorded_and_an_inline_preview_is_not(client, org, staff_of_a, photo_for_all, queue):
    client.force_login(staff_of_a)
    client.get(reverse("mobile:material_file", args=[photo_for_all.pk]), {"inline": "1"})
    client.get(reverse("mobile:material_file", args=[photo_for_all.pk]))
    material_uses_flush()
    assert [u[1] for u in uses()] == ["download"]


def test_hqs_use_is_recorded_without_a_store(client, hq_operator, library_of, queue):
    page(client, hq_operator, "mobile:material", library_of["all"].pk)
    material_uses_flush()
    assert uses() == [(library_of["all"].pk, "view", None, None, hq_operator.pk)]


@pytest.mark.parametrize("action", ["", "view", "send", "delete", "copy; drop table"])
def test_reporting_another_action_is_refused_and_counts_nothing(client, staff_of_a, library_of, queue, action):
    client.force_login(staff_of_a)
    response = client.post(reverse("mobile:material_used", args=[library_of["all"].pk]), {"action": action})
    assert response.status_code == 400
    assert material_uses_flush() == 0


def test_reporting_use_with_a_get_is_not_allowed(client, staff_of_a, library_of, queue):
    client.force_login(staff_of_a)
    assert client.get(reverse("mobile:material_used", args=[library_of["all"].pk]), {"action": "copy"}) \
        .status_code == 405
    assert material_uses_flush() == 0


def test_reporting_use_needs_the_pages_csrf_token(staff_of_a, library_of, queue):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_of_a)
    assert client.post(reverse("mobile:material_used", args=[library_of["all"].pk]), {"action": "copy"}) \
        .status_code == 403
    assert material_uses_flush() == 0


def test_the_home_page_leads_to_the_library(client, staff_of_a):
    assert reverse("mobile:materials") in page(client, staff_of_a, "mobile:home").content.decode()


def test_the_library_reads_in_english_for_an_english_phone(client, staff_of_a, hq_operator):
    script_published(by=hq_operator, title="限时话术", everyone=True)
    Material.objects.filter(title="限时话术").update(expires_at=timezone.now() + timedelta(days=3))
    client.force_login(staff_of_a)
    body = client.get(reverse("mobile:materials"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Expires in 3 days" in body and "Search materials and scripts" in body
