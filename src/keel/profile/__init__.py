"""Mergeable profiles of tables and columns."""

from keel.profile.categorical import CategoricalProfile
from keel.profile.count import CountProfile
from keel.profile.numeric import NumericProfile
from keel.profile.profile import DatetimeProfile, Profile, TextProfile, profile_kind

__all__ = [
    "CategoricalProfile",
    "CountProfile",
    "DatetimeProfile",
    "NumericProfile",
    "Profile",
    "TextProfile",
    "profile_kind",
]
