"""Command-line entry points: ``python -m bsa.cli.<task>`` or ``bsa <task>``; ``make`` forwards to them."""
