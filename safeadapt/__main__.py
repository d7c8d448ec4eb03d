"""`python -m safeadapt ...` = the `safeadapt` command."""

from safeadapt.cli import main

if __name__ == "__main__":
    main()
