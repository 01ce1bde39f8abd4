from rest_framework import serializers

from portal.api import ScopedModelSerializer, ScopedModelViewSet, ScopedReadOnlyViewSet
from stores.models import Franchisee, Region, Staff, Store


class RegionSerializer(ScopedModelSerializer):
    class Meta:
        model = Region
        fields = ("id", "code", "name", "level", "parent")


class FranchiseeSerializer(ScopedModelSerializer):
    class Meta:
        model = Franchisee
        fields = ("id", "code", "name", "contact_name", "contact_phone", "contract_start", "contract_end", "status")


class StoreSerializer(ScopedModelSerializer):
    class Meta:
        model = Store
        fields = ("id", "code", "name", "city", "address", "latitude", "longitude", "kind", "franchisee", "region",
                  "wecom_department_id", "status", "opened_on", "closed_on")
        read_only_fields = ("status", "closed_on")

    def validate(self, attrs):
        kind = attrs.get("kind", getattr(self.instance, "kind", Store.Kind.DIRECT))
        franchisee = attrs.get("franchisee", getattr(self.instance, "franchisee", None))
        if (kind == Store.Kind.FRANCHISE) != (franchisee is not None):
            raise serializers.ValidationError({"franchisee": "加盟店必须填写加盟商，直营店不能填写加盟商"})
        return attrs


class StaffSerializer(ScopedModelSerializer):
    class Meta:
        model = Staff
        fields = ("id", "userid", "name", "mobile", "store", "position", "status", "joined_on", "departed_at",
                  "customer_count")
        read_only_fields = ("status", "departed_at", "customer_count")


class RegionViewSet(ScopedReadOnlyViewSet):
    queryset = Region.objects.all()
    serializer_class = RegionSerializer


class FranchiseeViewSet(ScopedReadOnlyViewSet):
    queryset = Franchisee.objects.all()
    serializer_class = FranchiseeSerializer


class StoreViewSet(ScopedModelViewSet):
    queryset = Store.objects.select_related("region", "franchisee")
    serializer_class = StoreSerializer
    http_method_names = ["get", "post", "patch", "head", "options"]


class StaffViewSet(ScopedModelViewSet):
    queryset = Staff.objects.all()
    serializer_class = StaffSerializer
    http_method_names = ["get", "post", "patch", "head", "options"]
