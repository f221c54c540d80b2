"""Pages of a scope's users for the admin page (issue 12), on each backend: newest first by
creation or by last login (those who never logged in last), keyset pages that visit every user
once (also while users come and go), every filter and the search (by the keys of usernames and
emails, wildcards taken literally, or an exact user_id), malformed cursors refused,
users.last_login kept by open_session, and each page an index range, not a sort of the users."""

from __future__ import annotations

import base64

import attrs
import pytest

from corelogin.server.store import SessionRecord, Store
from corelogin.server.store.admin_base import UserOrder, UserQuery
from corelogin.server.store.admin_rows import user_page_sql
from corelogin.server.store.base import SessionLimit
from tests.store.conftest import Database, lock, log_in, record

NOW = 1_700_000_000.0


async def listed(store: Store, **query: object) -> list[str]:
    """The user_ids of the first page of a query of scope "s" (a page of 100)."""
    page = await store.list_users(UserQuery(scope="s", limit=100, **query))  # type: ignore[arg-type]
    assert page.next is None
    return [summary.user.user_id for summary in page.users]


async def walk(store: Store, query: UserQuery) -> list[list[str]]:
    """The user_ids of every page of ``query`` from its ``after``, following ``next`` to the
    end."""
    pages: list[list[str]] = []
    after = query.after
    while len(pages) < 100:
        page = await store.list_users(attrs.evolve(query, after=after))
        pages.append([summary.user.user_id for summary in page.users])
        if page.next is None:
            return pages
        after = page.next
    raise AssertionError("the walk does not end")


def cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


async def test_users_are_listed_newest_created_first_ties_by_user_id(store: Store) -> None:
    for user_id, created in (("u1", 10), ("u2", 30), ("u3", 20), ("u4", 20)):
        await store.create_user(record(user_id, f"User-{user_id}", created=created))
    await store.create_user(record("t1", "Other", scope="t", created=40))

    page = await store.list_users(UserQuery(scope="s"))

    assert [(s.user.user_id, s.user.created) for s in page.users] == [
        ("u2", 30),
        ("u4", 20),
        ("u3", 20),
        ("u1", 10),
    ]
    assert page.users[0].user == record("u2", "User-u2", created=30)
    assert page.next is None


@pytest.mark.parametrize("limit", [None, SessionLimit(max_sessions=3)])
async def test_users_are_listed_by_last_login_newest_first_then_those_who_never_logged_in(
    store: Store, limit: SessionLimit | None
) -> None:
    for user_id in ("u1", "u2", "u3", "u4", "u5"):
        await store.create_user(record(user_id, f"User-{user_id}"))
    await log_in(store, "u1", NOW + 20, limit)
    await log_in(store, "u2", NOW + 10, limit)
    await log_in(store, "u3", NOW + 20, limit)
    await log_in(store, "u2", NOW + 30, limit)  # the last login counts

    page = await store.list_users(UserQuery(scope="s", order="last_login"))

    assert [(s.user.user_id, s.last_login) for s in page.users] == [
        ("u2", NOW + 30),
        ("u3", NOW + 20),
        ("u1", NOW + 20),
        ("u5", None),
        ("u4", None),
    ]


@pytest.mark.parametrize("limit", [None, SessionLimit(max_sessions=3)])
async def test_last_login_is_set_by_a_login_event_and_not_by_a_session_without_one(
    store: Store, database: Database, limit: SessionLimit | None
) -> None:
    await store.create_user(record("u1", "Donna"))
    await store.open_session(SessionRecord("h1", "u1", NOW, NOW + 60), None, limit=limit)
    assert await database.rows("SELECT last_login FROM users") == [(None,)]

    await log_in(store, "u1", NOW + 5, limit)

    assert await database.rows("SELECT last_login FROM users") == [(NOW + 5,)]
    (summary,) = (await store.list_users(UserQuery(scope="s"))).users
    assert summary.last_login == NOW + 5


async def users_to_walk(store: Store) -> list[tuple[str, int, float | None]]:
    """23 users of scope "s" (and one of another): created in pairs of equal times, the first
    twelve logged in (in threes at equal times), the rest never: (user_id, created, last
    login) of each user of "s"."""
    made = []
    for n in range(23):
        user_id, created = f"u{n:02}", 100 + (n * 7) % 23 // 2
        await store.create_user(record(user_id, f"User{n}", created=created))
        last = None if n >= 12 else NOW + (n * 5) % 12 // 3
        if last is not None:
            await log_in(store, user_id, last)
        made.append((user_id, created, last))
    await store.create_user(record("t1", "Other", scope="t", created=200))
    return made


def in_order(order: UserOrder, made: list[tuple[str, int, float | None]]) -> list[str]:
    """The user_ids as a page of ``order`` lists them."""
    if order == "created":
        return [u for u, _, _ in sorted(made, key=lambda m: (m[1], m[0]), reverse=True)]
    seen = sorted((m for m in made if m[2] is not None), key=lambda m: (m[2], m[0]))
    never = sorted(m[0] for m in made if m[2] is None)
    return [m[0] for m in reversed(seen)] + never[::-1]


@pytest.mark.parametrize("order", ["created", "last_login"])
@pytest.mark.parametrize("limit", [5, 1, 23])
async def test_pages_visit_every_user_once_in_order(
    store: Store, order: UserOrder, limit: int
) -> None:
    made = await users_to_walk(store)

    pages = await walk(store, UserQuery(scope="s", order=order, limit=limit))

    assert [user for page in pages for user in page] == in_order(order, made)
    assert [len(page) for page in pages] == [limit] * (23 // limit) + [23 % limit] * (
        23 % limit > 0
    )


async def test_a_user_created_and_the_cursors_user_deleted_meanwhile_do_not_break_the_walk(
    store: Store,
) -> None:
    made = await users_to_walk(store)
    first = await store.list_users(UserQuery(scope="s", limit=5))
    await store.create_user(record("new", "Newcomer", created=1000))  # newest: before the walk
    assert await store.delete_user("s", first.users[-1].user.user_id)

    rest = await walk(store, UserQuery(scope="s", limit=5, after=first.next))

    seen = [s.user.user_id for s in first.users] + [user for page in rest for user in page]
    assert seen == in_order("created", made)


async def test_the_filters_select_by_group_activity_confirmation_and_lockout(
    store: Store,
) -> None:
    await store.create_user(record("u1", "Donna", "donna@x.com", group="vip"))
    await store.create_user(record("u2", "Tina", active=False))
    await store.create_user(
        record("u3", "Pam", "pam@x.com", active=False, confirmation="pending", group="vip")
    )
    await store.create_user(record("u4", "Lou"))
    await store.create_user(record("u5", "Eve", "Eve@X.com"))
    await store.create_user(record("u6", "Old"))
    await store.create_user(record("t1", "Lou", scope="t"))
    await lock(store, "lou", NOW - 10)  # Lou's username
    await lock(store, "@eve@x.com", NOW - 10)  # Eve's email
    await lock(store, "old", NOW - 1000)  # ended 400 seconds ago
    await lock(store, "donna", NOW - 10, scope="t")  # another scope's Donna

    assert await listed(store) == ["u6", "u5", "u4", "u3", "u2", "u1"]
    assert await listed(store, group="vip") == ["u3", "u1"]
    assert await listed(store, active=True) == ["u6", "u5", "u4", "u1"]
    assert await listed(store, active=False) == ["u3", "u2"]
    assert await listed(store, pending=True) == ["u3"]
    assert await listed(store, pending=False) == ["u6", "u5", "u4", "u2", "u1"]
    assert await listed(store, locked=True, now=NOW) == ["u5", "u4"]
    assert await listed(store, locked=False, now=NOW) == ["u6", "u3", "u2", "u1"]
    assert await listed(store, locked=True, now=NOW + 600) == []  # the locks have ended
    assert await listed(store, group="vip", active=True, locked=False, now=NOW) == ["u1"]


async def test_search_finds_a_username_or_email_by_the_start_of_its_key_or_a_user_id(
    store: Store,
) -> None:
    await store.create_user(record("id-1", "Donna", "donna@home.com"))
    await store.create_user(record("id-2", "Strasse"))
    await store.create_user(record("id-3", "Tina", "DonTina@work.com"))
    await store.create_user(record("id-4", "\uff26\uff55\uff4c\uff4c"))  # "Full", fullwidth
    await store.create_user(record("other", "Donald", scope="t"))

    assert await listed(store, search="DON") == ["id-3", "id-1"]  # username, email
    assert await listed(store, search=" dontina@ ") == ["id-3"]
    assert await listed(store, search="stra\u00df") == ["id-2"]  # "straß": "strass"
    assert await listed(store, search="full") == ["id-4"]
    assert await listed(store, search="\uff34\uff29") == ["id-3"]  # "TI", fullwidth
    assert await listed(store, search="id-2") == ["id-2"]  # a user_id, exactly
    assert await listed(store, search="id-") == []  # not a prefix of a user_id
    assert await listed(store, search="onna") == []  # not the middle of a name
    assert await listed(store, search="  ") == ["id-4", "id-3", "id-2", "id-1"]


async def test_like_wildcards_in_the_search_match_themselves(store: Store) -> None:
    for n, name in enumerate(("a%b", "axb", "a_c", "abc", "a\\d", "axd")):
        await store.create_user(record(f"u{n}", name))

    assert await listed(store, search="a%") == ["u0"]
    assert await listed(store, search="a_") == ["u2"]
    assert await listed(store, search="a\\") == ["u4"]
    assert await listed(store, search="a") == ["u5", "u4", "u3", "u2", "u1", "u0"]


@pytest.mark.parametrize(
    ("order", "after"),
    [
        ("created", "not a cursor!"),
        ("created", ""),
        ("created", cursor("not json")),
        ("created", cursor('{"created": 1}')),
        ("created", cursor('["created", 1]')),
        ("created", cursor('["last_login", 1.5, "u1"]')),  # another order's
        ("created", cursor('["created", "1", "u1"]')),
        ("created", cursor('["created", true, "u1"]')),
        ("created", cursor('["created", 1, 7]')),
        ("last_login", cursor('["last_login", NaN, "u1"]')),
        ("last_login", cursor('["created", 1, "u1"]')),
        ("last_login", "\u00e9t\u00e9"),
    ],
)
async def test_a_malformed_cursor_is_refused(store: Store, order: UserOrder, after: str) -> None:
    with pytest.raises(ValueError, match="malformed cursor"):
        await store.list_users(UserQuery(scope="s", order=order, after=after))


async def test_a_cursor_of_a_user_who_never_logged_in_goes_on_among_them(store: Store) -> None:
    for user_id in ("u1", "u2", "u3"):
        await store.create_user(record(user_id, f"User-{user_id}"))
    await log_in(store, "u2", NOW)
    first = await store.list_users(UserQuery(scope="s", order="last_login", limit=2))
    assert [(s.user.user_id, s.last_login) for s in first.users] == [("u2", NOW), ("u3", None)]

    second = await store.list_users(
        UserQuery(scope="s", order="last_login", limit=2, after=first.next)
    )

    assert [s.user.user_id for s in second.users] == ["u1"]
    assert second.next is None


async def test_a_page_of_no_users_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="limit"):
        await store.list_users(UserQuery(scope="s", limit=0))


@pytest.mark.parametrize("order", ["created", "last_login"])
async def test_a_deep_page_is_an_index_range_not_a_sort_of_the_users(
    store: Store, database: Database, order: UserOrder
) -> None:
    """The plan of a page after a cursor reads the users in the order of the page's index
    (users_created, users_last_login) from the cursor on; the only sort allowed is the merge of
    the two halves of a last_login page (at most twice the page). PostgreSQL plans its small
    table as a big one: no table scans, no bitmap scans (which read in no order)."""
    for user_id in ("u1", "u2", "u3"):
        await store.create_user(record(user_id, f"User-{user_id}"))
        await log_in(store, user_id, NOW)
    first = await store.list_users(UserQuery(scope="s", order=order, limit=1))
    sql, args = user_page_sql(UserQuery(scope="s", order=order, after=first.next))

    if database.backend == "sqlite":
        plan = [
            row[3]
            for row in await database.rows("EXPLAIN QUERY PLAN " + sql.replace("$", "?"), *args)
        ]
        reads = [step for step in plan if step.startswith(("SEARCH users", "SCAN users"))]
        assert reads, plan
        assert all(
            step.startswith(f"SEARCH users USING INDEX users_{order} (scope=?") for step in reads
        ), plan
        assert any(
            "(last_login,user_id)<(?,?)" in step or "(created,user_id)<(?,?)" in step
            for step in reads
        ), plan
        sorts = [step for step in plan if "TEMP B-TREE" in step]
        assert len(sorts) == (0 if order == "created" else 2), plan  # the merge's two halves
    else:
        await database.rows("SET enable_seqscan = off")
        await database.rows("SET enable_bitmapscan = off")
        text = "\n".join(row[0] for row in await database.rows("EXPLAIN " + sql, *args))
        scans = text.count(f"Index Scan Backward using users_{order} on users")
        assert scans == (1 if order == "created" else 2), text
        assert "ROW(" in text, text  # the cursor bounds the index scan
        assert text.count("Sort Key") == (0 if order == "created" else 1), text
