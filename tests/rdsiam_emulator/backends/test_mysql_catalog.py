"""The catalog's change counter belongs to one backend handle, not to the process."""

from rdsiam_emulator.backends.mysql_catalog import CatalogVersion
from rdsiam_emulator.endpoint.mysql_admin import CatalogCache


def test_a_write_through_the_counter_invalidates_only_caches_sharing_it():
    mine, other = CatalogVersion(), CatalogVersion()
    cache, unrelated = CatalogCache(mine, max_age=60), CatalogCache(other, max_age=60)
    cache.store(["alice "], mine.value, now=0.0)
    unrelated.store(["bob"], other.value, now=0.0)
    assert cache.lookup("alice ", now=1.0) is True
    assert cache.lookup("alice", now=1.0) is False  # exact, as the server matches a login name
    mine.changed()
    assert cache.lookup("alice ", now=1.0) is None  # reload before the next login
    assert unrelated.lookup("bob", now=1.0) is True  # another server's cache is untouched
    assert unrelated.lookup("bob", now=61.0) is None  # ... until it is max_age old
