"""Builds the provider set the settings ask for."""

from __future__ import annotations

from vocalis.providers.base import ProviderSet
from vocalis.settings import Settings


async def build_providers(settings: Settings) -> ProviderSet:
    """The fake or embedded set, with any stage pointed at an external server replaced."""
    if settings.providers == "fake":
        from vocalis.providers.fake import build_fake_providers

        providers = build_fake_providers()
    else:
        from vocalis.providers.embedded import build_embedded_providers

        providers = await build_embedded_providers(settings)
    from vocalis.providers.external import apply_external_overrides

    overridden: ProviderSet = apply_external_overrides(settings, providers)
    return overridden
