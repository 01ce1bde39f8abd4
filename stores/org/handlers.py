"""``change_contact`` callbacks: the address book changed in WeCom."""

from portal.wecom.events import event_handler
from stores.models import Store
from stores.org.addressbook import member_event_apply, staff_depart_userids, store_departments_unlink


@event_handler("change_contact", "create_user")
@event_handler("change_contact", "update_user")
def member_changed(fields: dict) -> None:
    member_event_apply(fields=fields)


@event_handler("change_contact", "delete_user")
def member_deleted(fields: dict) -> None:
    staff_depart_userids(userids=[fields["UserID"]])


@event_handler("change_contact", "delete_party")
def department_deleted(fields: dict) -> None:
    store_departments_unlink(stores=Store.objects.filter(wecom_department_id=int(fields["Id"])))
