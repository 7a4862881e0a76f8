"""The store contract: every kind of query, update, upsert and index the services issue.

Runs against whatever MongoDB-protocol server the test run uses: the local document store by
default, or the one `MONGODB_URI` names. Against the real MongoDB of docker-compose:

    docker compose up -d mongodb
    MONGODB_URI=mongodb://127.0.0.1:27017/?directConnection=true .venv/bin/python -m pytest tests/integration/test_store_contract.py

Each test states the behaviour the code relies on; a server that differs fails here, not in
production. Operations the code must not use (a $pull by condition, positional updates, TTL
indexes, transactions, $group beyond $sum) are not tested: they are not used.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import mongoengine as me
import pytest
from mongoengine.errors import NotUniqueError
from pymongo.errors import DuplicateKeyError

from shared import mongo
from shared.settings import Settings

ALIAS = "contract"


class Item(me.Document):
    meta = {"db_alias": ALIAS, "collection": "items", "indexes": ["group", "at"]}
    item_id = me.StringField(primary_key=True)
    code = me.StringField(unique=True)
    group = me.StringField()
    revision = me.IntField(default=0)
    count = me.IntField(default=0)
    tags = me.ListField(me.StringField())
    events = me.ListField(me.DictField())
    note = me.StringField(null=True)
    at = me.DateTimeField()


class Entry(me.Document):
    """Integer keys, as the ledger's seq."""

    meta = {"db_alias": ALIAS, "collection": "entries"}
    seq = me.IntField(primary_key=True)
    event_id = me.StringField(unique=True, sparse=True)


@pytest.fixture
def store(servers):
    settings = Settings(
        service="contract", mongodb_uri=servers.mongodb_uri, namespace=servers.namespace()
    )
    db = mongo.connect(settings, alias=ALIAS)
    Item.ensure_indexes()
    Entry.ensure_indexes()
    yield db
    db.client.drop_database(settings.database)
    me.disconnect(alias=ALIAS)


def make(item_id: str, **fields) -> Item:
    return Item(item_id=item_id, code=fields.pop("code", item_id), **fields).save(force_insert=True)


def test_the_server_answers_ping_and_lists_its_databases(store):
    mongo.ping(ALIAS)
    make("a")
    assert store.name in store.client.list_database_names()


def test_a_second_insert_of_a_key_or_unique_field_is_refused(store):
    make("a", code="x")
    with pytest.raises(NotUniqueError):
        make("a", code="y")
    with pytest.raises(NotUniqueError):
        make("b", code="x")
    Entry(seq=0, event_id="e0").save(force_insert=True)
    Entry(seq=1).save(force_insert=True)
    Entry(seq=2).save(force_insert=True)  # several without event_id: the unique index is sparse
    with pytest.raises(NotUniqueError):
        Entry(seq=3, event_id="e0").save(force_insert=True)
    with pytest.raises(DuplicateKeyError):
        store["entries"].insert_one({"_id": 1})
    assert Entry.objects.count() == 3


def test_equality_range_set_and_negation_queries(store):
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(6):
        make(
            f"i{i}",
            group="g" if i % 2 else "h",
            count=i,
            at=now + timedelta(hours=i),
            note=None if i < 3 else "n",
        )
    assert {d.item_id for d in Item.objects(group="g")} == {"i1", "i3", "i5"}
    assert Item.objects(item_id="i4").first().count == 4
    assert Item.objects(count__gte=2, count__lt=4).count() == 2
    assert Item.objects(at__lte=now + timedelta(hours=1)).count() == 2
    assert {d.item_id for d in Item.objects(item_id__in=["i0", "i5", "zz"])} == {"i0", "i5"}
    assert Item.objects(group__ne="g").count() == 3
    assert Item.objects(note=None).count() == 3
    assert Item.objects(__raw__={"note": {"$nin": [{}, None]}}).count() == 3
    assert store["items"].count_documents({"_id": {"$regex": "^i[0-2]$"}}) == 3
    assert Item.objects.get(item_id="i2").at.replace(tzinfo=UTC) == now + timedelta(hours=2)


def test_sort_limit_skip_and_projection(store):
    for i in (3, 1, 2, 0):
        Entry(seq=i).save(force_insert=True)
    assert [e.seq for e in Entry.objects.order_by("seq")] == [0, 1, 2, 3]
    assert Entry.objects.order_by("-seq").first().seq == 3
    assert Entry.objects.order_by("-seq").only("seq").as_pymongo().first() == {"_id": 3}
    assert [e.seq for e in Entry.objects.order_by("seq").skip(1).limit(2)] == [1, 2]
    assert [
        e["_id"] for e in Entry.objects(seq__gte=1, seq__lt=3).order_by("seq").as_pymongo()
    ] == [1, 2]


def test_array_queries_exists_size_and_element_fields(store):
    make("a", events=[{"event": "granted"}, {"event": "withdrawn", "all": True, "event_id": "w1"}])
    make("b", events=[{"event": "granted"}])
    make("c")
    assert store["items"].count_documents({"events.0": {"$exists": True}}) == 2
    assert Item.objects(events__size=1).count() == 1
    matched = Item.objects(__raw__={"events.all": True, "events.event_id": {"$ne": "w2"}})
    assert [d.item_id for d in matched] == ["a"]
    assert Item.objects(__raw__={"events.event_id": {"$ne": "w1"}}).count() == 2


def test_conditional_updates_change_one_document_or_none(store):
    make("a", revision=1)
    # Compare-and-set: only the writer that read revision 1 wins.
    assert Item.objects(item_id="a", revision=1).update_one(set__revision=2, inc__count=5) == 1
    assert Item.objects(item_id="a", revision=1).update_one(set__revision=3) == 0
    assert Item.objects(item_id="zz").update_one(set__revision=9) == 0
    stored = Item.objects.get(item_id="a")
    assert (stored.revision, stored.count) == (2, 5)
    assert Item.objects(item_id="a", events__size=0).update_one(push__events={"event": "x"}) == 1
    assert Item.objects(item_id="a", events__size=0).update_one(push__events={"event": "y"}) == 0
    Item.objects(item_id="a").update_one(unset__note=True, set__group="g")
    assert store["items"].find_one({"_id": "a"}).get("note", "absent") == "absent"


def test_upserts_insert_once_then_update(store):
    Item.objects(item_id="a").update_one(upsert=True, set__group="g", add_to_set__tags=["y", "x"])
    Item.objects(item_id="a").update_one(upsert=True, set__group="h", add_to_set__tags=["x", "z"])
    stored = Item.objects.get(item_id="a")
    assert stored.group == "h" and sorted(stored.tags) == ["x", "y", "z"]
    offsets = store["offsets"]
    offsets.update_one({"_id": "g:t:0"}, {"$max": {"offset": 5}}, upsert=True)
    offsets.update_one({"_id": "g:t:0"}, {"$max": {"offset": 3}}, upsert=True)
    assert offsets.find_one({"_id": "g:t:0"})["offset"] == 5
    # An upsert that would create a second document with a unique value is refused.
    make("b", code="taken")
    with pytest.raises(NotUniqueError):
        Item.objects(item_id="c").update_one(upsert=True, set__code="taken")


def test_pull_removes_exactly_the_stored_element(store):
    pending = [
        {"topic": "t", "envelope": {"id": f"e{i}", "payload": {"n": i, "nested": {"k": [1, 2]}}}}
        for i in range(3)
    ]
    store["outbox"].insert_one({"_id": "d", "pending_events": pending})
    stored = store["outbox"].find_one({"_id": "d"})
    result = store["outbox"].update_one(
        {"_id": "d"}, {"$pull": {"pending_events": stored["pending_events"][1]}}
    )
    assert result.modified_count == 1
    left = store["outbox"].find_one({"_id": "d"})["pending_events"]
    assert [p["envelope"]["id"] for p in left] == ["e0", "e2"]


def test_projection_of_one_field_of_each_array_element(store):
    # Admission reads which survey versions exist without their definitions.
    store["consultations"].insert_one(
        {
            "_id": "c",
            "status": "open",
            "draft": {"sections": ["..."]},
            "versions": [{"number": 1, "definition": {"a": 1}}, {"number": 2, "definition": {}}],
        }
    )
    assert store["consultations"].find_one({"_id": "c"}, {"status": 1, "versions.number": 1}) == {
        "_id": "c",
        "status": "open",
        "versions": [{"number": 1}, {"number": 2}],
    }


def test_deletes_by_filter_and_counts(store):
    now = datetime.now(UTC)
    for i in range(5):
        make(f"i{i}", at=now + timedelta(minutes=i - 2))
    Item.objects(at__lte=now).delete()
    assert Item.objects.count() == 2
    store["items"].delete_many({"_id": {"$regex": "^i4"}})
    assert Item.objects.count() == 1 and store["items"].count_documents({}) == 1


def test_each_namespace_is_a_database_of_its_own(servers):
    names = set()
    for _ in range(2):
        settings = Settings(
            service="contract", mongodb_uri=servers.mongodb_uri, namespace=servers.namespace()
        )
        db = mongo.connect(settings, alias=ALIAS)
        make(uuid.uuid4().hex)
        assert Item.objects.count() == 1
        names.add(db.name)
        db.client.drop_database(db.name)
    me.disconnect(alias=ALIAS)
    assert len(names) == 2


def test_concurrent_conditional_updates_of_one_document_have_one_winner(store):
    """Compare-and-set is what single-use codes, revisions, the ledger head and the budget rely on:
    of many writers that read the same revision, exactly one may succeed, and no update is lost."""
    rounds, writers = 20, 8
    for round_ in range(rounds):
        make(f"cas{round_}", revision=0)
        barrier = threading.Barrier(writers)
        won = []

        def writer(i: int) -> None:
            barrier.wait()
            if Item.objects(item_id=f"cas{round_}", revision=0).update_one(
                set__revision=1, push__tags=str(i)
            ):
                won.append(i)

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stored = Item.objects.get(item_id=f"cas{round_}")
        assert len(won) == 1 and stored.tags == [str(won[0])], (round_, won, stored.tags)


def test_concurrent_updates_of_different_fields_are_all_kept(store):
    """A pull by one writer and a set by another on the same document: neither undoes the other."""
    for round_ in range(20):
        store["outbox"].insert_one(
            {
                "_id": f"d{round_}",
                "status": "draft",
                "n": 0,
                "pending_events": [{"topic": "t", "envelope": {"id": "e0"}}],
            }
        )
        barrier = threading.Barrier(2)

        def pull():
            barrier.wait()
            store["outbox"].update_one(
                {"_id": f"d{round_}"},
                {"$pull": {"pending_events": {"topic": "t", "envelope": {"id": "e0"}}}},
            )

        def publish():
            barrier.wait()
            store["outbox"].update_one(
                {"_id": f"d{round_}"}, {"$set": {"status": "open"}, "$inc": {"n": 1}}
            )

        threads = [threading.Thread(target=pull), threading.Thread(target=publish)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stored = store["outbox"].find_one({"_id": f"d{round_}"})
        assert (stored["status"], stored["n"], stored["pending_events"]) == ("open", 1, []), stored


def test_a_note_under_a_dotted_field_is_settled_by_exactly_one_conditional_update(store):
    # The progress tally's pending notes (services/surveys/tallies.py): set with an upsert, then
    # removed together with an $inc only while the note is there.
    tallies = store["tallies"]
    tallies.update_one({"_id": "c"}, {"$set": {"pending.r_1": datetime.now(UTC)}}, upsert=True)
    tallies.update_one({"_id": "c"}, {"$set": {"pending.r_2": datetime.now(UTC)}}, upsert=True)
    settle = {"$inc": {"submitted": 1, "sections.s.shown": 1}, "$unset": {"pending.r_1": ""}}
    noted = {"_id": "c", "pending.r_1": {"$exists": True}}
    assert tallies.update_one(noted, settle).matched_count == 1
    assert tallies.update_one(noted, settle).matched_count == 0
    stored = tallies.find_one({"_id": "c"})
    assert stored["submitted"] == 1 and stored["sections"] == {"s": {"shown": 1}}
    assert list(stored["pending"]) == ["r_2"]
    # An erasure's note keeps what it takes away as documents in a list (paths hold dots).
    taken = [{"path": "submitted", "amount": -1}, {"path": "sections.s.shown", "amount": -1}]
    tallies.update_one(
        {"_id": "c"}, {"$set": {"erasing.r_1": {"at": datetime.now(UTC), "amounts": taken}}}
    )
    note = tallies.find_one({"_id": "c", "erasing.r_1": {"$exists": True}})["erasing"]["r_1"]
    undo = {item["path"]: item["amount"] for item in note["amounts"]}
    erasing = {"_id": "c", "erasing.r_1": {"$exists": True}}
    assert tallies.update_one(erasing, {"$inc": undo, "$unset": {"erasing.r_1": ""}}).matched_count
    stored = tallies.find_one({"_id": "c"})
    assert stored["submitted"] == 0 and stored["sections"] == {"s": {"shown": 0}}
    assert stored["erasing"] == {}
