"""`python -m pipeline.invoke`: the documented entry point; the code is pipeline.runtime.invoke."""

from pipeline.runtime.invoke import main

if __name__ == "__main__":
    raise SystemExit(main())
