"""The local document store (`voices-ferretdb`): what a crash of it keeps.

It commits to SQLite's write-ahead log without waiting for the disk (synchronous=normal), which
keeps every answered write through a crash of the process; only an operating-system crash may
lose the last ones. This starts a store of its own, kills it, and starts it again on its data.
"""

from __future__ import annotations

import signal

import pymongo

from deploy.servers import DocumentStore


def test_every_answered_write_survives_the_store_being_killed(tmp_path):
    store = DocumentStore(tmp_path / "data", tmp_path / "logs").start()
    try:
        client = pymongo.MongoClient(store.uri, serverSelectionTimeoutMS=5000)
        things = client["crash_test"]["things"]
        things.insert_many([{"_id": f"k{i}", "n": i, "pending": [i]} for i in range(200)])
        for i in range(0, 200, 2):
            things.update_one({"_id": f"k{i}"}, {"$pull": {"pending": i}})
        things.update_one({"_id": "k7"}, {"$inc": {"n": 100}})
        client.close()
        store.process.send_signal(signal.SIGKILL)  # no shutdown, no checkpoint
        store.process.wait(10)
    finally:
        store.stop()

    again = DocumentStore(tmp_path / "data", tmp_path / "logs").start()
    try:
        client = pymongo.MongoClient(again.uri, serverSelectionTimeoutMS=5000)
        things = client["crash_test"]["things"]
        stored = {d["_id"]: d for d in things.find()}
        assert len(stored) == 200
        assert stored["k7"]["n"] == 107
        assert all(stored[f"k{i}"]["pending"] == ([] if i % 2 == 0 else [i]) for i in range(200))
        client.close()
    finally:
        again.stop()
