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
