"""How the data commands (python -m util.index, util.prepare_*) end: bad input is one line."""
import sys


def run_main(main):
    """sys.exit(main()), with FileNotFoundError / ValueError printed as `error: ...`."""
    try:
        sys.exit(main())
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"error: {err}")
