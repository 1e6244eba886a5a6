"""`python -m gateway.docs_gen [--check]`: write (or compare) the generated reference pages."""

import argparse
import sys

from gateway.docs_gen import cli
from gateway.docs_gen.pages import PAGES, REFERENCE, undocumented


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gateway.docs_gen", description=__doc__)
    p.add_argument("--check", action="store_true", help="compare only; exit 1 on a difference")
    args = p.parse_args(argv)
    stale: list[str] = []
    for name, make in PAGES.items():
        path = REFERENCE / name
        text = make()
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(str(path))
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for key in undocumented():
        print(f"no description: {key} (add a comment above the field)", file=sys.stderr)
    for opt in cli.undocumented():
        print(f"no help text: frugal {opt}", file=sys.stderr)
    verb = "differs" if args.check else "written"
    for page in stale:
        print(f"{verb}: {page}", file=sys.stderr)
    if undocumented():
        return 1
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
