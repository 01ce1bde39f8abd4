"""``change_contact`` callbacks: the address book changed in WeCom."""

from portal.wecom.events import event_handler
from stores.models import Store
from stores.services.addressbook import member_sync_one, staff_depart_userids


@event_handler("change_contact", "create_user")
@event_handler("change_contact", "update_user")
def member_changed(fields: dict) -> None:
    if fields.get("NewUserID") and fields["NewUserID"] != fields.get("UserID"):
        # WeCom lets an admin rename a userid once: keep the row (and its history) under the new id.
        from stores.models import Staff

        Staff.objects.filter(userid=fields["UserID"]).update(userid=fields["NewUserID"])
        member_sync_one(userid=fields["NewUserID"])
        return
    member_sync_one(userid=fields["UserID"])


@event_handler("change_contact", "delete_user")
def member_deleted(fields: dict) -> None:
    staff_depart_userids(userids=[fields["UserID"]])


@event_handler("change_contact", "delete_party")
def department_deleted(fields: dict) -> None:
    Store.objects.filter(wecom_department_id=int(fields["Id"])).update(wecom_department_id=None)
