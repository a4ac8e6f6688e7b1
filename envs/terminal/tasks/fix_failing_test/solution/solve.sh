#!/bin/bash
cd /app
python3 - <<'PY'
path = "textutils.py"
source = open(path).read()
source = source.replace('words = re.split(r"[^A-Za-z0-9]", text.lower())',
                        'words = [w for w in re.split(r"[^a-z0-9]+", text.lower()) if w]')
open(path, "w").write(source)
PY
