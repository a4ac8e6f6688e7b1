"""Grades /app/textutils.py's slugify without importing it here.

The code under test runs in a child process that only reports slugify's outputs as JSON; this
process, which the agent's code never runs in, decides. Before the child starts, this file (the
hidden cases) is deleted and this process made non-dumpable, so the child can read neither.
"""

import ctypes
import hashlib
import json
import os
import subprocess
import sys

ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 0: no /proc/PID/mem or ptrace for the child
os.unlink(__file__)

VISIBLE_TEST_SHA256 = "7f9703c696b99a137b24d29c9bfa72b74c224330969c4d8731e8eeb3b13a64ac"
# test_textutils.py's two cases (pinned by its hash), then the hidden ones
CASES = {"Hello World": "hello-world", "Hello, World!": "hello-world", "  a  b  ": "a-b",
         "Top 10 -- Tips": "top-10-tips", "ALL-CAPS": "all-caps", "": "", "!!!": ""}
CHILD = ("import json, sys\nsys.path.insert(0, '/app')\nfrom textutils import slugify\n"
         "print(json.dumps([slugify(text) for text in json.load(sys.stdin)]))\n")

with open("/app/test_textutils.py", "rb") as f:
    if hashlib.sha256(f.read()).hexdigest() != VISIBLE_TEST_SHA256:
        sys.exit("test_textutils.py was changed")
try:
    child = subprocess.run([sys.executable, "-I", "-c", CHILD], input=json.dumps(list(CASES)), cwd="/app",
                           capture_output=True, text=True, timeout=10)
    got = json.loads(child.stdout.strip().splitlines()[-1])
except (subprocess.TimeoutExpired, ValueError, IndexError) as exc:
    sys.exit(f"slugify did not report its outputs: {exc!r}")
if not (isinstance(got, list) and len(got) == len(CASES) and all(type(s) is str for s in got)):
    sys.exit(f"slugify's outputs are not {len(CASES)} strings")
wrong = {text: slug for (text, want), slug in zip(CASES.items(), got) if slug != want}
if wrong:
    sys.exit(f"wrong slugs: {wrong}")
print("slugify ok")
