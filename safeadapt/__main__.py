"""`python -m safeadapt ...`: the same command as the `safeadapt` entry point."""

from safeadapt.cli import main

if __name__ == "__main__":
    main()
