"""Request and response schemas: they validate requests AND generate the OpenAPI document.

Request models forbid unknown fields (a typo is a 422, not silently ignored); every string and
list is bounded (invariant: bounded everything).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.domain.settlement import zone as settlement_zone

Str = Annotated[str, Field(min_length=1, max_length=200)]
Email = Annotated[
    str,
    Field(
        min_length=3,
        max_length=254,
        pattern=r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$",
    ),
]
Password = Annotated[str, Field(min_length=8, max_length=256)]
RoleName = Literal["owner", "admin", "agent", "viewer"]
Limit = Annotated[int, Field(ge=1, le=100)]
Cursor = Annotated[str, Field(min_length=1, max_length=512, pattern=r"^[A-Za-z0-9_-]+$")]
Money = Annotated[float, Field(ge=0, le=1e9)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Response(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Problem(Response):
    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[dict[str, str]] | None = None


class PageQuery(Request):
    limit: Limit = 20
    cursor: Cursor | None = None


# -- identity ----------------------------------------------------------------------------------
class SignupIn(Request):
    merchant_name: Str
    email: Email
    password: Password
    default_language: Literal["ar", "en"] = "ar"


class SignupOut(Response):
    merchant_id: str
    user_id: str
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int


class LoginIn(Request):
    email: Email
    password: Annotated[str, Field(min_length=1, max_length=256)]


class TokensOut(Response):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int


class RefreshIn(Request):
    refresh_token: Annotated[str, Field(min_length=1, max_length=512)]


class AcceptInviteIn(Request):
    invite_token: Annotated[str, Field(min_length=1, max_length=512)]
    password: Password


class LogoutIn(Request):
    refresh_token: Annotated[str, Field(max_length=512)] | None = None


class UserOut(Response):
    id: str
    email: str
    role: RoleName
    status: Literal["active", "invited"]
    created_at: float


class UserInviteIn(Request):
    email: Email
    role: Literal["admin", "agent", "viewer", "owner"]


class UserInviteOut(UserOut):
    invite_token: str


class UserPatchIn(Request):
    role: RoleName


class UserPage(Response):
    items: list[UserOut]
    next_cursor: str | None


class ApiKeyIn(Request):
    name: Str
    role: Literal["admin", "agent", "viewer"] = "admin"


class ApiKeyOut(Response):
    id: str
    name: str
    role: str
    masked: str
    created_at: float
    revoked: bool


class ApiKeyCreated(ApiKeyOut):
    api_key: str


class RootKeyRotated(Response):
    api_key: str
    masked: str
    rotated_at: float


class ApiKeyPage(Response):
    items: list[ApiKeyOut]
    next_cursor: str | None


class AuditOut(Response):
    id: str
    actor: str
    action: str
    target: str | None
    at: float
    ip: str | None


class AuditPage(Response):
    items: list[AuditOut]
    next_cursor: str | None


# -- merchant profile ------------------------------------------------------------------------
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class Interval(Request):
    start: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
    end: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


class BusinessHours(Request):
    timezone: Annotated[str, Field(min_length=1, max_length=64)] = "Asia/Riyadh"
    days: dict[Day, Annotated[list[Interval], Field(max_length=4)]] = Field(default_factory=dict)


class HandoffSettings(Request):
    enabled: bool = True
    keywords: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=20)] = Field(
        default_factory=list
    )
    outside_hours_message: Annotated[str, Field(max_length=1000)] | None = None


# An origin as browsers send it: scheme, host, optional port; no path, no trailing slash.
Origin = Annotated[
    str,
    Field(
        max_length=255,
        pattern=(
            r"^https?://(localhost|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])"
            r"(:\d{1,5})?$"
        ),
    ),
]
Colour = Annotated[str, Field(pattern=r"^#[0-9A-Fa-f]{6}$")]


class MerchantPatchIn(Request):
    name: Str | None = None
    default_language: Literal["ar", "en"] | None = None
    languages: Annotated[list[Literal["ar", "en"]], Field(min_length=1, max_length=2)] | None = None
    business_hours: BusinessHours | None = None
    handoff: HandoffSettings | None = None
    # The webchat widget: its colour, the greeting it opens with ("" for the built-in one),
    # and the sites allowed to embed it (the engine's own pages always are).
    widget_color: Colour | None = None
    widget_greeting: Annotated[str, Field(max_length=300)] | None = None
    allowed_origins: Annotated[list[Origin], Field(max_length=20)] | None = None
    # The zone of the merchant's business days (daily settlement); unset: the business hours'
    # zone, else Asia/Riyadh.
    timezone: Annotated[str, Field(min_length=1, max_length=64)] | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            settlement_zone(value)  # raises a ValueError naming the zone
        return value


class MerchantOut(Response):
    id: str
    name: str
    default_language: str
    languages: list[str]
    business_hours: dict[str, Any] | None
    handoff: dict[str, Any] | None
    widget_color: str | None = None
    widget_greeting: str | None = None
    allowed_origins: list[str] = Field(default_factory=list)
    created_at: float | None
    timezone: str = "Asia/Riyadh"


# -- products ----------------------------------------------------------------------------------
Sku = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
Url = Annotated[str, Field(max_length=2048, pattern=r"^https?://[!-~]+$")]


class ProductIn(Request):
    sku: Sku
    title: Annotated[str, Field(min_length=1, max_length=300)]
    description: Annotated[str, Field(max_length=10_000)] = ""
    price: Money | None = None
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = None
    category: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    url: Url | None = None
    image_url: Url | None = None
    in_stock: bool = True
    attributes: Annotated[dict[str, str | int | float | bool], Field(max_length=50)] = Field(
        default_factory=dict
    )

    @field_validator("attributes")
    @classmethod
    def _short_values(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key, value in v.items():
            if len(key) > 64 or (isinstance(value, str) and len(value) > 500):
                raise ValueError("attribute names at most 64, values at most 500 characters")
        return v


class ProductPatchIn(Request):
    title: Annotated[str, Field(min_length=1, max_length=300)] | None = None
    description: Annotated[str, Field(max_length=10_000)] | None = None
    price: Money | None = None
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = None
    category: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    url: Url | None = None
    image_url: Url | None = None
    in_stock: bool | None = None
    attributes: Annotated[dict[str, str | int | float | bool], Field(max_length=50)] | None = None


class ProductOut(Response):
    id: str
    sku: str
    title: str
    description: str = ""
    price: float | None = None
    currency: str | None = None
    category: str | None = None
    url: str | None = None
    image_url: str | None = None
    in_stock: bool = True
    attributes: dict[str, Any] = Field(default_factory=dict)
    updated_at: float | None = None


class ProductQuery(PageQuery):
    category: Annotated[str, Field(max_length=200)] | None = None
    in_stock: bool | None = None


class ProductPage(Response):
    items: list[ProductOut]
    next_cursor: str | None


class SearchQuery(Request):
    q: Annotated[str, Field(min_length=1, max_length=500)]
    limit: Annotated[int, Field(ge=1, le=20)] = 10
    max_price: Money | None = None


class SearchHit(Response):
    sku: str
    title: str
    price: float | None
    currency: str | None
    url: str | None
    score: float


class SearchOut(Response):
    items: list[SearchHit]


class CategoryOut(Response):
    name: str
    count: int


class CategoryList(Response):
    items: list[CategoryOut]


# -- knowledge --------------------------------------------------------------------------------
DocId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]


class KnowledgeIn(Request):
    id: DocId
    title: Annotated[str, Field(min_length=1, max_length=300)]
    body: Annotated[str, Field(min_length=1, max_length=100_000)]
    language: Literal["ar", "en"] | None = None


class KnowledgePatchIn(Request):
    title: Annotated[str, Field(min_length=1, max_length=300)] | None = None
    body: Annotated[str, Field(min_length=1, max_length=100_000)] | None = None
    language: Literal["ar", "en"] | None = None


class KnowledgeOut(Response):
    id: str
    title: str
    body: str
    language: str | None = None
    chunks: int = 0
    updated_at: float | None = None


class KnowledgePage(Response):
    items: list[KnowledgeOut]
    next_cursor: str | None


# -- conversations ------------------------------------------------------------------------------
ConvStatus = Literal["open", "pending", "resolved"]


class ConversationQuery(PageQuery):
    channel: Annotated[str, Field(max_length=128)] | None = None
    status: ConvStatus | None = None
    assignee: Annotated[str, Field(max_length=64)] | None = None
    label: Annotated[str, Field(max_length=64)] | None = None
    q: Annotated[str, Field(max_length=200)] | None = None


class ConversationOut(Response):
    id: str
    channel_id: str
    customer_id: str
    status: ConvStatus
    assignee: str | None
    labels: list[str]
    paused: bool
    last_message_at: float | None
    last_text: str | None
    message_count: int
    created_at: float | None


class ConversationPage(Response):
    items: list[ConversationOut]
    next_cursor: str | None


class MessageProduct(Response):
    sku: str | None = None
    title: str | None = None
    price: float | None = None
    currency: str | None = None
    url: str | None = None
    image_url: str | None = None


class MessageOut(Response):
    id: str
    direction: Literal["in", "out"]
    text: str
    at: float
    intent: str | None = None
    author: str | None = None
    handoff: bool | None = None
    # Inbound only: false when the bot stayed silent (an agent had the conversation).
    answered: bool | None = None
    # Bot replies: the product cards the customer was shown.
    products: list[MessageProduct] | None = None


class MessagePage(Response):
    items: list[MessageOut]
    next_cursor: str | None


class AgentReplyIn(Request):
    text: Annotated[str, Field(min_length=1, max_length=4096)]


class ConversationPatchIn(Request):
    status: ConvStatus | None = None
    assignee: Annotated[str, Field(max_length=64)] | None = None
    labels: (
        Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]], Field(max_length=20)]
        | None
    ) = None


class NoteIn(Request):
    text: Annotated[str, Field(min_length=1, max_length=4000)]


class NoteOut(Response):
    id: str
    author: str
    text: str
    at: float


class NoteList(Response):
    items: list[NoteOut]


# -- carts ----------------------------------------------------------------------------------
class CartLineIn(Request):
    sku: Annotated[str, Field(min_length=1, max_length=128)]
    qty: Annotated[int, Field(ge=1, le=99)] = 1


class CartIn(Request):
    """The whole cart (PUT semantics): ``[]`` empties it. Prices come from the catalogue."""

    items: Annotated[list[CartLineIn], Field(max_length=20)]


class CartLineOut(Response):
    sku: str
    title: str
    qty: int
    price: float | None
    currency: str | None
    line_total: float


class CartOut(Response):
    conversation_id: str
    channel_id: str
    customer_id: str
    customer_name: str | None = None
    items: list[CartLineOut]
    item_count: int
    total: float
    currency: str | None
    updated_at: float | None


class CartQuery(PageQuery):
    channel: Annotated[str, Field(min_length=1, max_length=128)] | None = None


class CartPage(Response):
    items: list[CartOut]
    next_cursor: str | None


# -- orders and leads -----------------------------------------------------------------------
Phone = Annotated[str, Field(min_length=7, max_length=32)]


class CustomerIn(Request):
    name: Annotated[str, Field(min_length=1, max_length=120)]
    phone: Phone
    city: Annotated[str, Field(min_length=1, max_length=80)]


class OrderItemIn(Request):
    sku: Annotated[str, Field(min_length=1, max_length=128)]
    qty: Annotated[int, Field(ge=1, le=99)] = 1


class OrderIn(Request):
    customer: CustomerIn
    items: Annotated[list[OrderItemIn], Field(min_length=1, max_length=50)]


OrderStatus = Literal["new", "confirmed", "shipped", "delivered", "cancelled"]


class OrderLineOut(Response):
    sku: str
    title: str
    qty: int
    unit_price: float
    currency: str | None
    line_total: float


class OrderOut(Response):
    id: str
    status: OrderStatus
    customer: dict[str, str]
    items: list[OrderLineOut]
    total: float
    currency: str | None
    source: str
    conversation_key: str | None = None
    created_at: float
    updated_at: float


class OrderPatchIn(Request):
    status: OrderStatus


class OrderQuery(PageQuery):
    status: OrderStatus | None = None
    phone: Annotated[str, Field(max_length=32)] | None = None
    # The orders placed in one conversation (the console shows them beside it).
    conversation: Annotated[str, Field(max_length=64, pattern=r"^cv_[0-9a-f]{1,40}$")] | None = None


class OrderPage(Response):
    items: list[OrderOut]
    next_cursor: str | None


LeadStatus = Literal["new", "contacted", "won", "lost"]


class LeadIn(Request):
    name: Annotated[str, Field(max_length=120)] = ""
    phone: Annotated[str, Field(max_length=32)] = ""
    city: Annotated[str, Field(max_length=80)] = ""
    note: Annotated[str, Field(max_length=1000)] = ""


class LeadPatchIn(Request):
    status: LeadStatus | None = None
    note: Annotated[str, Field(max_length=1000)] | None = None


class LeadOut(Response):
    id: str
    name: str
    phone: str
    city: str
    source: str
    status: str
    note: str
    order_id: str | None = None
    created_at: float
    updated_at: float


class LeadQuery(PageQuery):
    status: LeadStatus | None = None


class LeadPage(Response):
    items: list[LeadOut]
    next_cursor: str | None


# -- analytics ----------------------------------------------------------------------------
class AnalyticsQuery(Request):
    days: Annotated[int, Field(ge=1, le=90)] = 7
    channel: Annotated[str, Field(max_length=128)] | None = None


class AnalyticsBucket(Response):
    conversations: int
    messages_in: int
    first_reply_p50_s: float | None
    first_reply_p95_s: float | None
    answer_coverage: float | None
    handoff_rate: float | None
    orders: int
    conversion: float | None


class TopQuestion(Response):
    text: str
    count: int


class AnalyticsOut(Response):
    since: float
    total: AnalyticsBucket
    per_channel: dict[str, AnalyticsBucket]
    per_day: dict[str, AnalyticsBucket]
    top_questions: list[TopQuestion]


class Empty(Response):
    ok: bool = True


# -- operator: merchants --------------------------------------------------------------------------
class MerchantIn(Request):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    default_language: Literal["ar", "en"] = "ar"


class MerchantCreated(Response):
    id: str
    api_key: str


# -- imports and jobs ---------------------------------------------------------------------------
class JobAccepted(Response):
    job_id: str


class JobProgress(Response):
    """``indexed`` products are searchable when the job is ``done``; ``described`` counts the
    description vectors embedded after that (they sharpen the dense signal)."""

    total: int = 0
    stored: int = 0
    indexed: int = 0
    described: int = 0


class JobError(Response):
    line: int | None = None
    message: str


class JobOut(Response):
    id: str
    kind: str | None = None
    status: Literal["running", "done", "failed"]
    progress: JobProgress
    errors: list[JobError]
    failure: str | None = None


# -- channels and delivery -------------------------------------------------------------------------
class ChannelCreated(Response):
    id: str
    kind: str
    webhook_url: str
    webhook_registered: bool | None = None
    webhook_error: str | None = None


class ChannelOut(Response):
    """Per-kind settings (``phone_number_id``, ``page_id``, ``api_version``...) appear too."""

    model_config = ConfigDict(extra="allow")

    id: str
    kind: str
    api_base: str
    secrets: dict[str, str]
    created_at: float | None = None


class ChannelList(Response):
    channels: list[ChannelOut]


EntryId = Annotated[str, Field(pattern=r"^[0-9]{1,20}-[0-9]{1,20}$")]


class DeadLetterQuery(Request):
    limit: Annotated[int, Field(ge=1, le=500)] = 50
    before: Annotated[str, Field(pattern=r"^(\+|[0-9]{1,20}-[0-9]{1,20})$")] = "+"


class DeadLetterOut(Response):
    id: str
    reason: str | None = None
    attempts: int | None = None
    at: float | None = None
    merchant_id: str | None = None
    channel_id: str | None = None
    channel_kind: str | None = None
    customer_id: str | None = None
    outbox_id: str | None = None


class DeadLetterList(Response):
    dead_letters: list[DeadLetterOut]


class DeadLetterReplayed(Response):
    replayed: str
    outbox_id: str


# -- playground ------------------------------------------------------------------------------------
class PlaygroundIn(Request):
    customer_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:@+-]{1,128}$")]
    text: Annotated[str, Field(min_length=1, max_length=4096)]


class ReplyProduct(Response):
    sku: str | None = None
    title: str | None = None
    price: float | None = None
    currency: str | None = None
    url: str | None = None


class PlaygroundOut(Response):
    text: str
    products: list[ReplyProduct]
    intent: str
    handoff: bool


# -- knowledge gaps --------------------------------------------------------------------------
class GapsQuery(Request):
    limit: Annotated[int, Field(ge=1, le=200)] = 50


class GapOut(Response):
    question: str
    count: int
    intent: str | None = None
    language: str | None = None
    best_score: float | None = None
    first_at: float | None = None
    last_at: float | None = None


class GapList(Response):
    items: list[GapOut]
    limit: int


# -- store platforms (Salla, Zid, Shopify) ---------------------------------------------------------
StoreKindName = Literal["salla", "zid", "shopify"]


class IntegrationIn(Request):
    """Credentials by kind: Salla ``access_token``, ``refresh_token``?, ``webhook_secret``; Zid
    ``authorization``, ``access_token``, ``webhook_user``, ``webhook_password``; Shopify
    ``shop``, ``access_token``, ``client_secret``. Encrypted at rest, shown masked."""

    kind: StoreKindName
    credentials: Annotated[
        dict[str, Annotated[str, Field(min_length=1, max_length=4096)]], Field(max_length=10)
    ]
    api_base: Annotated[str, Field(max_length=2048)] | None = None


class IntegrationCreated(Response):
    id: str
    kind: str
    webhook_url: str
    status: str


class SyncProgress(Response):
    products: int
    orders: int
    last_error: str | None = None


class WebhookSubscriptions(Response):
    """The platform-side webhook subscriptions: ``pending`` until the first attempt,
    ``subscribed`` when the platform holds every topic we apply, ``failed`` with a fixed
    ``last_error`` (retried on the next sync pass)."""

    status: Literal["pending", "subscribed", "failed"]
    topics: int
    last_error: str | None = None


class IntegrationOut(Response):
    id: str
    kind: str
    api_base: str
    status: str
    sync: SyncProgress
    synced_at: float | None = None
    webhooks: WebhookSubscriptions | None = None
    credentials: dict[str, str]
    created_at: float | None = None


class IntegrationList(Response):
    items: list[IntegrationOut]


# -- finance: daily settlement -------------------------------------------------------------------
SettlementStatus = Literal["completed", "failed"]


class SettlementOut(Response):
    id: str
    date: str
    timezone: str
    status: SettlementStatus
    error: str | None
    currency: str
    entries: int
    captures: int
    refunds: int
    chargebacks: int
    gross_captured_minor: int
    refunded_minor: int
    chargebacks_minor: int
    fees_minor: int
    vat_minor: int
    vat_rate_bp: int
    net_minor: int
    window_start: float
    window_end: float
    attempts: int
    created_at: float
    settled_at: float | None


class SettlementPage(Response):
    items: list[SettlementOut]
    next_cursor: str | None


class SettlementSummaryQuery(Request):
    days: Annotated[int, Field(ge=1, le=366)] = 30


class SettlementSummaryOut(Response):
    days: int
    from_: str = Field(alias="from")
    to: str
    settlements: int
    completed: int
    failed: int
    currency: str
    entries: int
    gross_captured_minor: int
    refunded_minor: int
    chargebacks_minor: int
    fees_minor: int
    vat_minor: int
    net_minor: int


# -- payments ---------------------------------------------------------------------------------
_CREDENTIAL = Annotated[str, Field(min_length=8, max_length=500)]


class PaymentProviderIn(Request):
    """Moyasar needs ``secret_key`` and the dashboard webhook's ``webhook_secret``; Tap needs
    ``secret_key`` (it also signs the webhooks). ``api_base`` defaults to the provider's."""

    kind: Literal["moyasar", "tap"]
    secret_key: _CREDENTIAL
    webhook_secret: _CREDENTIAL | None = None
    api_base: Annotated[str, Field(max_length=300)] | None = None


class PaymentProviderOut(Response):
    kind: str
    api_base: str
    credentials: dict[str, str]
    webhook_url: str
    updated_at: float


class PaymentIn(Request):
    order_id: Annotated[str, Field(min_length=1, max_length=100)]


class PaymentOut(Response):
    id: str
    order_id: str
    provider: str
    status: Literal["initiated", "paid", "failed", "refunded"]
    url: str | None
    amount_minor: int
    currency: str
    refunded_minor: int
    created_at: float
    updated_at: float


class RefundIn(Request):
    amount_minor: Annotated[int, Field(gt=0, le=10**12)] | None = None


class RefundOut(Response):
    id: str
    payment_id: str
    amount_minor: int
    currency: str
    status: str
    created_at: float
