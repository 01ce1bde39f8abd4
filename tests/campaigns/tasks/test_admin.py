"""The task admin: write, preview and dispatch through the services; identity fields a role may not change."""

from __future__ import annotations

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from campaigns.tasks.models import Assignment, Campaign, StoreTask, Task
from campaigns.tasks.services import TargetSpec, campaign_create
from tests.campaigns.tasks.helpers import task_dispatched, task_made


def _task_post(campaign, **extra) -> dict:
    now = timezone.localtime()
    data = {
        "campaign": campaign.pk, "kind": "offline", "title": "门头清洁", "instructions": "{门店名称}请清洁门头",
        "executor": "store", "start_at_0": now.strftime("%Y-%m-%d"), "start_at_1": now.strftime("%H:%M:%S"),
        "deadline_0": (now + timedelta(days=2)).strftime("%Y-%m-%d"), "deadline_1": "18:00:00", "plan": "{}",
        "recurrence": "none", "review_by": "none",
        "variants-TOTAL_FORMS": "0", "variants-INITIAL_FORMS": "0",
        "checklist-TOTAL_FORMS": "0", "checklist-INITIAL_FORMS": "0",
    }
    data.update(extra)
    return data


def test_an_hq_operator_writes_a_task_in_the_admin(client, hq_operator, org):
    campaign = campaign_create(by=hq_operator, name="门头季")
    client.force_login(hq_operator)
    response = client.post(reverse("admin:campaigns_task_add"), _task_post(campaign, regions=[org.east.pk]))
    assert response.status_code == 302, response.content.decode()[:2000]
    task = Task.objects.get(title="门头清洁")
    assert list(task.target_regions.all()) == [org.east]


def test_a_franchisee_owner_cannot_post_another_franchisees_store(client, franchisee_owner, org):
    campaign = campaign_create(by=franchisee_owner, name="加盟店活动")
    client.force_login(franchisee_owner)
    response = client.post(reverse("admin:campaigns_task_add"), _task_post(campaign, stores=[org.store_b.pk]))
    assert response.status_code == 200
    assert "stores" in response.context["adminform"].form.errors
    assert not Task.objects.exists()


def test_a_franchisee_owner_posting_another_owner_id_still_gets_its_own_campaign(client, franchisee_owner, org):
    client.force_login(franchisee_owner)
    response = client.post(reverse("admin:campaigns_campaign_add"),
                           {"name": "我的活动", "owner_franchisee": org.franchisee_two.pk, "goal": ""})
    assert response.status_code == 302
    assert Campaign.objects.get(name="我的活动").owner_franchisee == org.franchisee_one


def test_a_franchisee_owner_cannot_write_into_an_hq_campaign_from_the_admin(client, hq_operator, franchisee_owner,
                                                                           org):
    campaign = campaign_create(by=hq_operator, name="总部活动")
    client.force_login(franchisee_owner)
    response = client.post(reverse("admin:campaigns_task_add"), _task_post(campaign, stores=[org.store_a.pk]))
    assert response.status_code == 200  # the HQ campaign is not offered to a franchisee
    assert "campaign" in response.context["adminform"].form.errors


def test_the_task_page_previews_its_target(client, hq_operator, org):
    task = task_made(by=hq_operator, target=TargetSpec(regions=[org.east]), executor="staff")
    client.force_login(hq_operator)
    page = client.get(reverse("admin:campaigns_task_change", args=[task.pk])).content.decode()
    assert "门店 2 家，执行员工 2 人" in page and "上海徐汇店（A001）" in page


def test_the_dispatch_action_dispatches_and_says_how_much(client, hq_operator, org):
    task = task_made(by=hq_operator, target=TargetSpec(regions=[org.east]))
    client.force_login(hq_operator)
    response = client.post(reverse("admin:campaigns_task_changelist"),
                           {"action": "dispatch_selected", "_selected_action": [task.pk]}, follow=True)
    assert "新增门店任务 2 条" in response.content.decode()
    assert StoreTask.objects.filter(task=task).count() == 2


def test_the_dispatch_action_says_why_an_empty_target_is_refused(client, hq_operator, org):
    task = task_made(by=hq_operator, target=TargetSpec(cities=["拉萨"]))
    client.force_login(hq_operator)
    response = client.post(reverse("admin:campaigns_task_changelist"),
                           {"action": "dispatch_selected", "_selected_action": [task.pk]}, follow=True)
    assert "目标门店为空" in response.content.decode()


def test_a_region_manager_sees_only_the_assignments_of_their_region(client, hq_operator, region_manager_east, org):
    task_dispatched(by=hq_operator, stores=[org.store_a, org.store_b])
    client.force_login(region_manager_east)
    response = client.get(reverse("admin:campaigns_assignment_changelist"))
    assert [a.store.code for a in response.context["cl"].result_list] == ["A001"]


def test_a_store_manager_opening_another_stores_assignment_gets_404(client, hq_operator, store_manager_of_a, org):
    task = task_dispatched(by=hq_operator, stores=[org.store_a, org.store_b])
    theirs = Assignment.objects.get(task=task, store=org.store_b)
    client.force_login(store_manager_of_a)
    assert client.get(reverse("admin:campaigns_assignment_change", args=[theirs.pk])).status_code == 404
