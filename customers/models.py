"""Every model of the customers app, imported from its subject package (Django loads an app's models from here)."""

from customers.acquisition.models import Channel, ContactWay, WelcomeDelivery, WelcomeMessage
from customers.contacts.models import STAGE_ORDER, Customer, Relationship, Stage
from customers.dashboard.models import AcquisitionDaily
from customers.lifecycle.models import StageChange
from customers.members.models import Member, MemberImport
from customers.segments.models import Segment, SegmentSnapshot, SegmentSnapshotMember
from customers.tags.models import Tag, TagGroup

__all__ = ["STAGE_ORDER", "AcquisitionDaily", "Channel", "ContactWay", "Customer", "Member", "MemberImport",
           "Relationship", "Segment", "SegmentSnapshot", "SegmentSnapshotMember", "Stage", "StageChange", "Tag",
           "TagGroup", "WelcomeDelivery", "WelcomeMessage"]
