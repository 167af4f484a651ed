"""``python -m streamfit``: the same as the ``streamfit`` command."""

from streamfit.cli.main import main

if __name__ == "__main__":
    main()
