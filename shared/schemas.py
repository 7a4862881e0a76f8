"""Schema bases every API and event contract shares (marshmallow only, no web framework)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import RAISE, Schema, fields


class StrictSchema(Schema):
    """Refuses unknown fields: a typo in a request or an event is an error, never silently dropped."""

    class Meta:
        unknown = RAISE


class UTCDateTime(fields.DateTime):
    """MongoDB returns stored times without a zone; they are UTC, and the API says so."""

    def _serialize(self, value: datetime | None, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return super()._serialize(value, attr, obj, **kwargs)
