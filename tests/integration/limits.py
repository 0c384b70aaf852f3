"""The limits of common/limits.h, read from the header itself so the tests follow the code:
LIMITS["LIMIT_BODY_BYTES"] and so on."""

import os
import re

_HEADER = os.path.join(os.path.dirname(__file__), "..", "..", "common", "limits.h")


def _load():
    values = {}
    with open(_HEADER) as f:
        text = f.read().replace("\\\n", " ")   # join continued lines
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)   # and drop the comments
        for line in text.splitlines():
            m = re.match(r"#define\s+(LIMIT_\w+)\s+(.+?)\s*$", line)
            if not m:
                continue
            expr = re.sub(r"(\d+)(?:ull|u)\b", r"\1", m.group(2))
            for name, value in values.items():
                expr = re.sub(rf"\b{name}\b", str(value), expr)
            values[m.group(1)] = int(eval(expr, {"__builtins__": {}}))  # trusted: our header
    return values


LIMITS = _load()
