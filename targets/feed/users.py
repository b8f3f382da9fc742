"""The user registry (design §07, the users table): who exists, and the handle shown with
each of their tweets.

A user registers once (PUT /v1/users/me) and acts only after that; a campaign's graph is seeded
with registered users (harness/seeding.py). A handle is claimed for good: it cannot be changed,
so each API process keeps the handles it has read (a bounded LRU) and never asks again. Hydration
therefore reads the store only for authors this process has not met yet. Only registered users
are kept: one who registers on another API process is found there at its first request.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from cachetools import LRUCache

from targets.feed.errors import ApiError
from targets.feed.outage import MAYBE_DOWN, fail_open
from targets.feed.store import Profile, Store
from targets.feed.validation import NewProfile

# About 300 bytes each with the LRU's bookkeeping: the large graph's 200,000 users take about
# 60 MB per API process.
KNOWN_HANDLES = 250_000
# How long a request waits for the registry before it goes on without it (fail open): a store
# that is down must not add the driver's whole timeout to reads the cache can serve.
REGISTRY_WAIT_S = 0.5

log = logging.getLogger(__name__)


class Users:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._handles: LRUCache[int, str] = LRUCache(maxsize=KNOWN_HANDLES)

    async def require(self, user: int) -> None:
        """Raise 403 unless `user` registered (an account acts only once it exists).

        Fails open when the store cannot answer (an outage: outage.py): the token is still
        verified, and a feed the cache can serve must not turn into an error because the registry
        is unreachable. Any other error propagates (a 500, logged and counted), never a pass."""
        if self._handles.get(user) is not None:   # the hot path: no task for wait_for
            return
        try:
            registered = await asyncio.wait_for(self.exists(user), REGISTRY_WAIT_S)
        except MAYBE_DOWN as exc:   # the store down or slow: let the authenticated user through
            fail_open(f"user registry (letting user {user} through)", exc)
            return
        if not registered:
            raise ApiError(403, "not_registered", f"user {user} has no profile yet: register with PUT /v1/users/me")

    async def exists(self, user: int) -> bool:
        if self._handles.get(user) is not None:   # get(), not `in`: a hit must refresh the LRU order
            return True
        profile = await self.store.profile(user)
        if profile is not None:
            self._handles[user] = profile.handle
        return profile is not None

    async def handles(self, user_ids: set[int]) -> dict[int, str]:
        """"@handle" of each registered user among `user_ids` (a store read, bounded by
        REGISTRY_WAIT_S, for those not known here; left out if the store cannot answer: a page
        with some handles missing beats a 5xx)."""
        known = {u: h for u in user_ids if (h := self._handles.get(u)) is not None}
        missing = [u for u in user_ids if u not in known]
        if missing:
            try:
                found = await asyncio.wait_for(self.store.handles(missing), REGISTRY_WAIT_S)
            except MAYBE_DOWN as exc:   # the store down or slow
                fail_open(f"handles of {len(missing)} authors", exc)
                found = {}
            self._handles.update(found)
            known.update(found)
        return {u: f"@{h}" for u, h in known.items()}

    async def register(self, user: int, new: NewProfile) -> tuple[Profile, bool]:
        """The user's profile after registering `new`, and whether it was created now.

        Registering again with the same handle (any case) is a retry: it answers the profile
        (with the display name updated when one is given). Another handle is a 409: handles are
        fixed. A handle claimed by someone else is a 409 too. The handle is claimed before the
        profile is written, so a registration that dies in between is finished by its retry; the
        profile is written only if it still has no handle, so of two registrations racing with
        different handles one wins and the other gets its 409 and gives its claim back."""
        found = await self.store.profile(user)
        if found is not None:
            if found.handle.lower() != new.handle.lower():
                raise ApiError(409, "handle_fixed", f"user {user} is registered as @{found.handle}; "
                                                    "handles cannot be changed")
            if new.display_name is not None and new.display_name != found.display_name:
                await self.store.set_display_name(user, new.display_name)
                found = Profile(found.user_id, found.handle, new.display_name, found.created_at)
            self._handles[user] = found.handle
            return found, False
        holder = await self.store.claim_handle(new.handle, user)
        if holder != user:
            raise ApiError(409, "handle_taken", f"@{new.handle} belongs to another user")
        profile = Profile(user, new.handle, new.display_name or new.handle, datetime.now(UTC))
        if not await self.store.set_profile(user, profile.handle, profile.display_name, profile.created_at):
            winner = await self.store.profile(user)
            if winner is not None and winner.handle.lower() == new.handle.lower():   # a retry raced its original
                self._handles[user] = winner.handle
                return winner, False
            await self.store.release_handle(new.handle, user)
            taken = winner.handle if winner is not None else "another handle"
            raise ApiError(409, "handle_fixed", f"user {user} registered as @{taken} meanwhile; "
                                                "handles cannot be changed")
        self._handles[user] = profile.handle
        return profile, True
