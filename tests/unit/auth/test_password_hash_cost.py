"""The argon2id cost of new password hashes: the library's RFC 9106 profile unless IM_PASSWORD_HASH_* say
otherwise (the test servers set a cheap one); a stored hash keeps its own cost until a login rehashes it."""

from __future__ import annotations

from tinyim.modules.auth.adapters.crypto import Argon2Hasher
from tinyim.settings import Settings


async def test_an_unset_cost_is_the_librarys_profile_and_a_set_one_is_used() -> None:
    profile = Argon2Hasher(time_cost=0, memory_cost=0)  # what Settings' defaults (0) give
    cheap = Argon2Hasher(time_cost=1, memory_cost=1024)
    strong, weak = await profile.hash("password1"), await cheap.hash("password1")
    assert "$m=65536,t=3," in strong and "$m=1024,t=1," in weak
    assert await cheap.verify(strong, "password1") and await profile.verify(weak, "password1")
    assert profile.needs_rehash(weak) and not profile.needs_rehash(strong)


def test_the_settings_default_to_the_profile() -> None:
    fields = Settings.model_fields
    assert fields["password_hash_time_cost"].default == 0 and fields["password_hash_memory_kib"].default == 0
