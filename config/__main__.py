"""``python -m config``: print the README's table of environment variables from the settings' declaration."""
from config.settings import settings_table

print(settings_table(), end="")
