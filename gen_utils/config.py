"""A chapter's settings, one per line, with the value for each profile side by side.

In the spirit of nanoGPT's config files, each line is one setting, its three profile values and
a comment saying why::

    cfg = gu.config(
        #          smoke     cpu      gpu
        steps=(      40,   3_000,  12_000),  # cpu: about five epochs fit in 280 s on 2 cores
        batch=(      64,      64,     128),
        lr=2e-4,                              # one value: the same in every profile (DCGAN paper)
    )
    cfg.steps  # -> 3000 in the cpu profile

A value is a tuple ``(smoke, cpu, gpu)`` or one value shared by all three profiles. A shared value
that is itself a tuple must be written three times or as a list, because a tuple of another length
is rejected (it is almost always a forgotten profile).

A *dry run* (``GEN_UTILS_DRY_RUN=1``; CI runs every notebook so with ``GEN_UTILS_PROFILE=gpu``)
takes the profile's settings except those named in ``dry_run=dict(...)``: the amounts of work
(steps, samples, evaluation sizes, batch sizes). The gpu profile's models and code paths then run
on a CPU in a minute or two, so a broken gpu configuration fails in CI rather than in a reader's
Colab session::

    cfg = gu.config(
        steps=(40, 3_000, 12_000),             # ...
        width=(16, 32, 64),                    # ...
        dry_run=dict(steps=2),                 # a CI dry run: the gpu model, two steps
    )
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .runtime import PROFILES, current_profile
from .runtime import dry_run as is_dry_run


class Config(Mapping[str, Any]):
    """The settings of one profile, read-only, by attribute (``cfg.steps``).

    It is also a read-only mapping (``dict(cfg)``, ``**cfg``, ``"steps" in cfg``), so that it can
    be handed to code that expects keyword arguments.
    """

    def __init__(self, profile: str, values: dict[str, Any]) -> None:
        object.__setattr__(self, "_profile", profile)
        object.__setattr__(self, "_values", dict(values))

    @property
    def profile(self) -> str:
        """The profile these values were picked for."""
        return self._profile

    def __getattr__(self, name: str) -> Any:
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        raise AttributeError(
            f"the configuration has no setting {name!r}; it has: {', '.join(values) or 'none'}"
        )

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"configurations are read-only: change {name!r} in the configuration cell, "
            "where every profile's value is visible"
        )

    def __getitem__(self, name: str) -> Any:
        return self.__getattr__(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        width = max((len(k) for k in self._values), default=0)
        lines = [f"  {k:<{width}} = {v!r}" for k, v in self._values.items()]
        return f"Config for the {self._profile} profile:\n" + "\n".join(lines)


def per_profile(name: str, value: Any) -> dict[str, Any]:
    """``{profile: value}`` for one setting: a (smoke, cpu, gpu) tuple, or one shared value."""
    if isinstance(value, tuple):
        if len(value) != len(PROFILES):
            raise ValueError(
                f"setting {name!r} is a tuple of {len(value)} values; give one value per profile "
                f"({', '.join(PROFILES)}), or a single value shared by all (write a shared tuple "
                "three times or as a list)"
            )
        return dict(zip(PROFILES, value, strict=True))
    return dict.fromkeys(PROFILES, value)


def config(*, dry_run: Mapping[str, Any] | None = None, **settings: Any) -> Config:
    """The settings of the current profile: ``config(steps=(40, 3_000, 12_000), lr=2e-4)``.

    Each keyword is a ``(smoke, cpu, gpu)`` tuple or one value for all profiles (see the module
    docstring). The profile is the one ``gu.setup`` chose, else ``$GEN_UTILS_PROFILE``.
    dry_run: values that replace the profile's in a dry run (``GEN_UTILS_DRY_RUN=1``); each name
    must be a setting. Raises ValueError naming any that is not.
    """
    taken = sorted(k for k in settings if hasattr(Config, k))
    if taken:
        raise ValueError(f"setting names {taken} are taken by the configuration itself (cfg.{taken[0]} "
                         "would not read the setting): rename them")
    unknown = sorted(set(dry_run or {}) - set(settings))
    if unknown:
        raise ValueError(f"dry_run names {unknown}, which are not settings; it has: {', '.join(settings)}")
    profile = current_profile()
    values = {k: per_profile(k, v)[profile] for k, v in settings.items()}
    if is_dry_run():
        values.update(dry_run or {})
        profile += " (dry run)"
    return Config(profile, values)
