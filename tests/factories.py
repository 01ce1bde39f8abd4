import factory
from django.contrib.auth import get_user_model

from stores.models import Franchisee, Region, Staff, Store


class RegionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Region
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"R{n:03d}")
    name = factory.Sequence(lambda n: f"区域{n}")
    level = Region.Level.AREA


class FranchiseeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Franchisee
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"F{n:03d}")
    name = factory.Sequence(lambda n: f"加盟公司{n}")


class StoreFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Store
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"T{n:04d}")
    name = factory.Sequence(lambda n: f"测试门店{n}")
    region = factory.SubFactory(RegionFactory)
    kind = Store.Kind.DIRECT


class StaffFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Staff
        django_get_or_create = ("userid",)

    userid = factory.Sequence(lambda n: f"user{n:05d}")
    name = factory.Sequence(lambda n: f"员工{n}")
    store = factory.SubFactory(StoreFactory)
    position = Staff.Position.GUIDE


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"login{n}")
    password = factory.django.Password("pw-for-tests-2026")


# -- customers ---------------------------------------------------------------------------------------
from django.utils import timezone  # noqa: E402

from customers.models import (  # noqa: E402
    AcquisitionDaily,
    Channel,
    ContactWay,
    Customer,
    Member,
    Relationship,
    StageChange,
    Tag,
    TagGroup,
    WelcomeDelivery,
)


class TagGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TagGroup

    name = factory.Sequence(lambda n: f"标签组{n}")
    wecom_group_id = factory.Sequence(lambda n: f"etGROUP{n:05d}")


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tag

    group = factory.SubFactory(TagGroupFactory)
    name = factory.Sequence(lambda n: f"标签{n}")
    wecom_tag_id = factory.Sequence(lambda n: f"etTAG{n:06d}")


class ChannelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Channel
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"C{n:03d}")
    name = factory.Sequence(lambda n: f"渠道{n}")


class CustomerFactory(factory.django.DjangoModelFactory):
    """A customer followed by ``staff`` (the primary relationship is created with it)."""

    class Meta:
        model = Customer
        skip_postgeneration_save = True

    external_userid = factory.Sequence(lambda n: f"wmCUSTOMER{n:08d}")
    name = factory.Sequence(lambda n: f"客户{n}")
    staff = factory.SubFactory(StaffFactory)
    store = factory.LazyAttribute(lambda o: o.staff.store)
    region = factory.LazyAttribute(lambda o: o.staff.store.region)
    franchisee = factory.LazyAttribute(lambda o: o.staff.store.franchisee)
    first_added_at = factory.LazyFunction(timezone.now)

    @factory.post_generation
    def follow(self, create, extracted, **kwargs):
        if create and self.staff_id:
            Relationship.objects.get_or_create(customer=self, staff_id=self.staff_id, defaults={
                "store_id": self.store_id, "added_at": self.first_added_at or timezone.now()})


def relationship_in(store) -> Relationship:
    return CustomerFactory(staff=StaffFactory(store=store)).relationships.get()


def contact_way_in(store) -> ContactWay:
    return ContactWay.objects.create(kind=ContactWay.Kind.STAFF, name=f"{store.name}员工码",
                                      state=f"t{ContactWay.objects.count() + 1:06d}{store.pk}",
                                      store=store, staff=StaffFactory(store=store))


def welcome_delivery_in(store) -> WelcomeDelivery:
    return WelcomeDelivery.objects.create(relationship=relationship_in(store), status=WelcomeDelivery.Status.FAILED,
                                          reason="41051", event_at=timezone.now())


def member_in(store) -> Member:
    return Member.objects.create(member_no=f"M{Member.objects.count() + 1:08d}{store.pk}", home_store=store,
                                 mobile_masked="138****0000")


def stage_change_in(store) -> StageChange:
    customer = CustomerFactory(staff=StaffFactory(store=store))
    return StageChange.objects.create(customer=customer, from_stage="fan", to_stage="interested", cause="manual")


def acquisition_daily_in(store) -> AcquisitionDaily:
    staff = StaffFactory(store=store)
    return AcquisitionDaily.objects.create(day=timezone.localdate(), staff=staff, store=store, region=store.region,
                                           adds=3)
