"""Profiles: other LRP implementations' conventions, reproduced exactly (docs/profiles.md).

``explain(model, x, target, rules, profile="zennit")`` explains as Zennit would; ``profile="reflrp"`` (the
default) is this engine's own conventions (docs/conventions.md).  A profile changes only conventions, never the
arithmetic's correctness: every rule it uses is a reflrp rule, and the ledger accounts for it.
"""

from __future__ import annotations

from reflrp.errors import ReflrpError
from reflrp.profiles.base import Preset, Profile
from reflrp.profiles.captum import Captum
from reflrp.profiles.innvestigate import INNvestigate
from reflrp.profiles.zennit import Zennit

#: The profiles by name.
PROFILES = {"reflrp": Profile, "zennit": Zennit, "innvestigate": INNvestigate, "captum": Captum}


def as_profile(profile):
    """A :class:`Profile` from a profile or its name."""
    if isinstance(profile, Profile):
        return profile
    if isinstance(profile, str) and profile in PROFILES:
        return PROFILES[profile]()
    if isinstance(profile, type) and issubclass(profile, Profile):
        raise ReflrpError(f"profile must be a profile or its name, got the class {profile.__name__}; did you mean "
                          f"{profile.__name__}()?")
    shown = repr(profile) if isinstance(profile, str) else type(profile).__name__
    raise ReflrpError(f"profile must be one of {', '.join(PROFILES)} (or a reflrp.profiles.Profile), got {shown}")


__all__ = ["PROFILES", "Captum", "INNvestigate", "Preset", "Profile", "Zennit", "as_profile"]
