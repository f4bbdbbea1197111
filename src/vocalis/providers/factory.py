"""Builds the provider set the settings ask for."""

from __future__ import annotations

from vocalis.providers.base import ProviderSet
from vocalis.settings import Settings


async def build_providers(settings: Settings) -> ProviderSet:
    if settings.providers == "fake":
        from vocalis.providers.fake import build_fake_providers

        return build_fake_providers()
    from vocalis.providers.embedded import build_embedded_providers

    providers: ProviderSet = await build_embedded_providers(settings)
    return providers
