"""MongoDB connection per service: a `mongomock://` URI selects the in-process store."""

from __future__ import annotations

from urllib.parse import urlsplit

import mongoengine
from pymongo.database import Database

from shared.settings import Settings


def connect(settings: Settings, alias: str) -> Database:
    """Register the service's connection under `alias` (the service name) and return its database.

    Reconnecting replaces an earlier registration, which tests rely on for a clean store.
    """
    mongoengine.disconnect(alias=alias)
    uri = settings.mongodb_uri
    if uri.startswith("mongomock://"):
        import mongomock  # only unit tests use the in-process store

        # One host name per alias: mongoengine reuses a client whose settings match another
        # alias's, which would let a fresh in-process store inherit an old one's data.
        mongoengine.connect(
            db=settings.database,
            alias=alias,
            host=f"mongodb://{alias}.in-process",
            mongo_client_class=mongomock.MongoClient,
            uuidRepresentation="standard",
        )
    else:
        # The URI's own path names a default database; each service still keeps its own.
        mongoengine.connect(
            db=settings.database,
            alias=alias,
            host=uri,
            serverSelectionTimeoutMS=3000,
            uuidRepresentation="standard",
        )
    _forget_cached_collections(alias)
    return mongoengine.get_db(alias)


def _forget_cached_collections(alias: str) -> None:
    # mongoengine caches each document class's collection object; after a
    # reconnect it would keep writing to the old client.
    from mongoengine.base import _document_registry

    for document in _document_registry.values():
        if getattr(document, "_meta", {}).get("db_alias") == alias and hasattr(
            document, "_collection"
        ):
            document._collection = None


def ping(alias: str) -> None:
    """Raise if the service's database does not answer."""
    mongoengine.get_connection(alias).admin.command("ping")


def describe(uri: str) -> str:
    """The URI without credentials, for logs and readiness output."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}{parts.path}"
