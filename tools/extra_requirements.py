"""Print one optional-dependency group of pyproject.toml, one requirement per line.

`make lint` installs the `lint` extra with it: pip cannot install only an extra's requirements of a
local project without building the project itself, which the linters don't need.
"""

import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pip carries the same parser
    from pip._vendor import tomli as tomllib

pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
print("\n".join(pyproject["project"]["optional-dependencies"][sys.argv[1]]))
