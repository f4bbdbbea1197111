"""``python -m vocalis.providers.embedded``: fetch and assemble the embedded model files."""

from vocalis.providers.embedded.assets import prepare_models
from vocalis.settings import Settings

if __name__ == "__main__":
    prepare_models(Settings())
