"""Members for POS, mini-program and e-commerce systems.

    POST /api/v1/members/upsert/   one member object, or a list of up to 1,000; idempotent by member_no
    GET  /api/v1/members/          scoped list (cursor pagination), ?member_no= ?mobile= ?unionid=
    GET  /api/v1/members/{id}/

A token acts as its user: HQ writes any member; a region, franchisee or store user only members
whose home store is in its scope. Each item succeeds or fails on its own, with its reasons.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import (
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_view,
)
from rest_framework import permissions, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from customers.members.services import (
    MemberRecord,
    members_upsert_scoped,
    mobile_hash,
    mobile_masked,
)
from customers.models import Member
from portal.api import ScopedModelSerializer, ScopedReadOnlyViewSet
from portal.api_errors import ErrorSerializer
from portal.parsers import INT_MAX, ValueInvalid, mobile_normalize

UPSERT_MAX = 1000


class MemberSerializer(ScopedModelSerializer):
    home_store_code = serializers.CharField(source="home_store.code", read_only=True, default=None)

    class Meta:
        model = Member
        fields = ("id", "member_no", "mobile_masked", "unionid", "name", "level", "points", "lifetime_spend",
                  "order_count", "last_purchase_on", "home_store", "home_store_code", "rfm_r", "rfm_f", "rfm_m",
                  "updated_at")
        read_only_fields = fields


def _optional_text(max_length: int, **kwargs) -> serializers.CharField:
    return serializers.CharField(max_length=max_length, required=False, allow_blank=True, allow_null=True, **kwargs)


class MemberWriteSerializer(serializers.Serializer):
    """One member. A field left out, null or blank keeps the stored value (a new member gets the default)."""

    member_no = serializers.CharField(max_length=32, help_text=_("会员号（唯一）"))
    mobile = _optional_text(32, write_only=True, help_text=_("手机号，只保存哈希与掩码"))
    unionid = _optional_text(64)
    name = _optional_text(64)
    level = _optional_text(16)
    points = serializers.IntegerField(required=False, allow_null=True, min_value=-INT_MAX, max_value=INT_MAX)
    lifetime_spend = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=0, required=False,
                                              allow_null=True)
    order_count = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=INT_MAX)
    last_purchase_on = serializers.DateField(required=False, allow_null=True)
    home_store_code = _optional_text(32, help_text=_("归属门店编码"))

    def validate_member_no(self, value):
        return value.strip()

    def validate_mobile(self, value):
        if not value or not value.strip():
            return None
        try:
            return mobile_normalize(value)
        except ValueInvalid as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def to_record(self) -> MemberRecord:
        data: dict[str, Any] = {k: (v.strip() or None) if isinstance(v, str) else v
                                for k, v in self.validated_data.items()}
        mobile = data.pop("mobile", None)
        return MemberRecord(
            member_no=data["member_no"], mobile_hash=mobile_hash(mobile) if mobile else None,
            mobile_masked=mobile_masked(mobile) if mobile else None, unionid=data.get("unionid"),
            name=data.get("name"), level=data.get("level"), points=data.get("points"),
            lifetime_spend=data.get("lifetime_spend"), order_count=data.get("order_count"),
            last_purchase_on=data.get("last_purchase_on"), store_code=data.get("home_store_code"))


class UpsertItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    member_no = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=["created", "updated", "unchanged", "error"])
    id = serializers.IntegerField(allow_null=True)
    # a declared field (DRF's metaclass takes it off the class), not the Serializer.errors property
    errors = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()), required=False)


class UpsertResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    failed = serializers.IntegerField()
    results = UpsertItemResultSerializer(many=True)


class CanUpsertMembers(permissions.BasePermission):
    """Writing members needs both add and change (an upsert may do either)."""

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and user.has_perms(["customers.add_member",
                                                                       "customers.change_member"]))


def _items_validate(items: list) -> tuple[list[dict], dict[int, MemberRecord]]:
    """Validate each item alone; a member_no repeated in one request is refused after its first time."""
    results: list[dict] = []
    records: dict[int, MemberRecord] = {}
    seen: dict[str, int] = {}  # member_no → the index of its first item
    for index, item in enumerate(items):
        serializer = MemberWriteSerializer(data=item if isinstance(item, dict) else {})
        number = item.get("member_no") if isinstance(item, dict) else None
        if not isinstance(item, dict):
            errors = {"non_field_errors": [str(_("每一项都应是一个会员对象"))]}
        elif not serializer.is_valid():
            errors = serializer.errors
        elif serializer.validated_data["member_no"] in seen:
            errors = {"member_no": [str(_("会员号与本次请求的第 %(index)d 项重复") % {
                "index": seen[serializer.validated_data["member_no"]]})]}
        else:
            errors = None
            records[index] = serializer.to_record()
            seen[records[index].member_no] = index
        results.append({"index": index, "member_no": number, "status": "error" if errors else None, "id": None,
                        **({"errors": errors} if errors else {})})
    return results, records


class MemberFilterSerializer(serializers.Serializer):
    """The list's filters, exact matches; blank means no filter. A value no member can have is a 400 with its
    reason (a mobile that is not one, a NUL character, longer than the field), never a database error."""

    member_no = serializers.CharField(required=False, allow_blank=True, max_length=32, help_text="会员号（精确）")
    mobile = serializers.CharField(required=False, allow_blank=True, max_length=32,
                                   help_text="手机号（精确，按哈希匹配）")
    unionid = serializers.CharField(required=False, allow_blank=True, max_length=64, help_text="UnionID（精确）")

    def validate_mobile(self, value):
        if not value:
            return value
        try:
            return mobile_hash(mobile_normalize(value))
        except ValueInvalid as exc:
            raise serializers.ValidationError(str(exc)) from exc


@extend_schema_view(list=extend_schema(parameters=[MemberFilterSerializer]))
class MemberViewSet(ScopedReadOnlyViewSet):
    queryset = Member.objects.select_related("home_store")
    serializer_class = MemberSerializer

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action != "list":
            return queryset
        filters = MemberFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        lookups = {"member_no": "member_no", "unionid": "unionid", "mobile": "mobile_hash"}
        return queryset.filter(**{lookup: filters.validated_data[name] for name, lookup in lookups.items()
                                  if filters.validated_data.get(name)})

    @extend_schema(
        request=PolymorphicProxySerializer(
            component_name="MemberUpsertRequest", resource_type_field_name=None, many=False,
            serializers=[MemberWriteSerializer, MemberWriteSerializer(many=True)]),
        responses={
            200: OpenApiResponse(UpsertResultSerializer, description="至少一项已写入或无需变更；失败的项见 results"),
            400: OpenApiResponse(
                PolymorphicProxySerializer(component_name="MemberUpsertRefused", resource_type_field_name=None,
                                           many=False, serializers=[UpsertResultSerializer, ErrorSerializer]),
                description="没有一项能写入（每一项的原因见 results），或请求体整体无效（原因见 detail）"),
        },
        description="按会员号新增或更新会员（幂等）。请求体为一个会员对象或最多 1000 个会员对象的数组；"
                    "每一项单独校验、单独成败。未提供、null 或空白的字段保留原值。门店级令牌只能写入归属门店"
                    "在其权限范围内的会员。没有一项能写入时答 400。",
    )
    @action(detail=False, methods=["post"], url_path="upsert", permission_classes=[CanUpsertMembers])
    def upsert(self, request):
        payload = request.data
        items = [payload] if isinstance(payload, dict) else payload
        if not isinstance(items, list) or not items:
            return Response({"detail": _("请求体应为一个会员对象或会员对象数组")}, status=status.HTTP_400_BAD_REQUEST)
        if len(items) > UPSERT_MAX:
            return Response({"detail": _("一次最多提交 %(max)d 个会员") % {"max": UPSERT_MAX}},
                            status=status.HTTP_400_BAD_REQUEST)
        results, records = _items_validate(items)
        written = members_upsert_scoped(records=list(records.values()), user=request.user)
        for index, record in records.items():
            if record.member_no in written.errors:
                results[index].update(status="error", errors=written.errors[record.member_no])
            else:
                outcome = written.outcomes[record.member_no]
                results[index].update(status=outcome.status, id=outcome.member_id)
        counts = {key: sum(1 for r in results if r["status"] == key) for key in ("created", "updated", "unchanged")}
        body = {**counts, "failed": sum(1 for r in results if r["status"] == "error"), "results": results}
        nothing_written = body["failed"] == len(results)  # a single object that failed, or a batch that all did
        return Response(body, status=status.HTTP_400_BAD_REQUEST if nothing_written else status.HTTP_200_OK)

