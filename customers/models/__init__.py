from customers.models.channels import Channel, ContactWay, WelcomeDelivery, WelcomeMessage
from customers.models.contacts import STAGE_ORDER, Customer, Relationship, Stage, Tag, TagGroup
from customers.models.lifecycle import StageChange
from customers.models.members import Member, MemberImport
from customers.models.segments import Segment, SegmentSnapshot, SegmentSnapshotMember
from customers.models.stats import AcquisitionDaily

__all__ = ["STAGE_ORDER", "AcquisitionDaily", "Channel", "ContactWay", "Customer", "Member", "MemberImport",
           "Relationship", "Segment", "SegmentSnapshot", "SegmentSnapshotMember", "Stage", "StageChange", "Tag",
           "TagGroup", "WelcomeDelivery", "WelcomeMessage"]
