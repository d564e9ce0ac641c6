"""`python -m pipeline.codegen`: the documented entry point; the code is pipeline.wasmbuild.codegen."""

from pipeline.wasmbuild.codegen import main

if __name__ == "__main__":
    raise SystemExit(main())
